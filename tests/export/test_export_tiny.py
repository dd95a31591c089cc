"""Export of the tiny preset: it validates, shares one weights file, is deterministic, and
validation fails (listing the mismatch) once a graph or a weight is changed."""
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from cli_runner import run_cli
from nova_deploy.artifacts.names import CODEBOOK, MANIFEST, WEIGHTS_FILE
from nova_deploy.errors import ExportError
from nova_deploy.export.exporter import export_model, validate_dir
from nova_deploy.export.manifest import model_fingerprint, spec_from_manifest
from nova_deploy.export.onnx_io import INLINE_MAX_BYTES
from nova_deploy.export.validate import check_structure
from export_sources import one_thread, preset_source  # noqa: F401  (one_thread: autouse fixture)

pytestmark = pytest.mark.slow  # the module's tiny export traces 10 graphs (about a minute on 2 cores)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    torch.set_num_threads(1)
    return export_model(preset_source("tiny"), tmp_path_factory.mktemp("tiny") / "export", max_batch=2)


def test_export_validates_and_manifest_describes_it(tiny_export):
    out, m = tiny_export.out_dir, tiny_export.manifest
    src = preset_source("tiny")
    assert m["valid"] is True and m["validation"]["passed"] is True
    assert m["model"]["fingerprint"] == model_fingerprint(src.var, src.vae)
    assert m["model"]["var_config"]["depth"] == 2 and m["scales"]["patch_nums"] == [1, 2, 3, 4]
    assert m["precision"] == "fp32" and m["opset"] == 18 and m["max_batch"] == 2
    assert m["prune_range"] == {"first_scale": 2, "min_keep_fraction": 0.0, "upsample_mode": "bicubic"}
    assert {"torch", "onnx", "onnxruntime", "onnxscript", "polygraphy"} <= set(m["versions"])
    expected = {f"{g}.onnx" for g in m["graphs"]} | {WEIGHTS_FILE, CODEBOOK}
    assert set(m["files"]) == expected
    assert {p.name for p in out.iterdir()} == expected | {MANIFEST}
    # six shapes (batch 1 and max x all / half / one kept), every graph compared at each
    assert len(m["validation"]["cases"]) == 6
    assert set(m["validation"]["errors"]) == set(m["graphs"])
    g = m["graphs"]["scale_03"]
    assert g["dims"]["kept_0"]["min"] == 1 and g["dims"]["kept_0"]["max"] == 16
    assert g["dims"]["prefix_1"]["max"] == 1 + 4 + 9
    assert [t["name"] for t in g["inputs"]][:5] == ["x_BlC", "ada_NB6C", "head_ada_B2C", "k_prefix_0", "v_prefix_0"]
    assert np.load(out / CODEBOOK).shape == (64, 8)
    assert spec_from_manifest(m).graph("scale_03").profile()["keep_idx_0"] == ((2, 1), (4, 8), (4, 16))


def test_graphs_share_one_external_weights_file(tiny_export):
    out, w = tiny_export.out_dir, tiny_export.manifest["weights"]
    for name in tiny_export.manifest["graphs"]:
        model = onnx.load(str(out / f"{name}.onnx"), load_external_data=False)
        for init in model.graph.initializer:
            if init.data_location == onnx.TensorProto.EXTERNAL:
                where = {e.key: e.value for e in init.external_data}
                assert where["location"] == WEIGHTS_FILE
            else:
                assert len(init.raw_data) < INLINE_MAX_BYTES, f"{name}: {init.name} inline"
        assert (out / f"{name}.onnx").stat().st_size < 200_000  # graph protobufs hold no weights
    # the scale graphs all hold the blocks: without sharing they would be stored once per graph
    assert w["bytes_on_disk"] == (out / WEIGHTS_FILE).stat().st_size
    assert w["bytes_on_disk"] < w["bytes_referenced_by_graphs"]
    assert w["bytes_on_disk"] < 1.1 * w["raw_weight_bytes"]


def test_structure_matches_spec(tiny_export):
    spec = _spec(tiny_export)
    for g in spec.graphs:
        assert check_structure(tiny_export.out_dir / g.file, g, spec.opset) == []


def _spec(result):
    return spec_from_manifest(result.manifest)


def test_structure_check_reports_undeclared_axis_and_names(tiny_export, tmp_path):
    spec = _spec(tiny_export)
    g = spec.scale_graph(1)
    model = onnx.load(str(tiny_export.out_dir / g.file), load_external_data=False)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "tokens"  # l is static at scale 1
    model.graph.output[0].name = "logits"
    onnx.save(model, str(tmp_path / g.file))
    shutil.copy(tiny_export.out_dir / WEIGHTS_FILE, tmp_path / WEIGHTS_FILE)
    text = "\n".join(str(f) for f in check_structure(tmp_path / g.file, g, spec.opset))
    assert "input x_BlC axis 1: dynamic 'tokens' where the spec has static 4 (undeclared dynamic axis)" in text
    assert "output names ['logits'" in text


def _tamper_head_weight(out: Path) -> None:
    """Add 0.5 to every element of the head's weight inside weights.bin (shared by every scale graph).
    The exporter stores Linear weights transposed under generated names: find it by content."""
    head_T = preset_source("tiny").var.head.weight.detach().T.contiguous().numpy()
    model = onnx.load(str(out / "scale_00.onnx"), load_external_data=False)
    with open(out / WEIGHTS_FILE, "r+b") as f:
        for init in model.graph.initializer:
            if init.data_location != onnx.TensorProto.EXTERNAL or list(init.dims) != list(head_T.shape):
                continue
            where = {e.key: e.value for e in init.external_data}
            f.seek(int(where["offset"]))
            w = np.frombuffer(f.read(int(where["length"])), dtype=np.float32).reshape(head_T.shape)
            if np.array_equal(w, head_T):
                f.seek(int(where["offset"]))
                f.write((w + 0.5).astype(np.float32).tobytes())
                return
    raise AssertionError("head weight not found in weights.bin")


def test_validation_fails_and_lists_the_mismatch_after_tampering(tiny_export, tmp_path):
    bad = tmp_path / "tampered"
    shutil.copytree(tiny_export.out_dir, bad)
    _tamper_head_weight(bad)
    with pytest.raises(ExportError) as e:
        validate_dir(bad, preset_source("tiny"))
    text = str(e.value)
    assert "weights.bin: sha256 differs from the manifest" in text
    assert "logits_BlV: max abs error" in text and "exceeds atol + rtol * peak" in text
    assert "scale_00" in text and "scale_03" in text  # every graph that reads the weight, all collected


def test_validate_command(tiny_export, tmp_path):
    r = run_cli("validate", tiny_export.out_dir)
    assert r.exit_code == 0, r.output
    assert "valid (10 graphs, 6 shapes each)" in r.output
    bad = tmp_path / "tampered"
    shutil.copytree(tiny_export.out_dir, bad)
    _tamper_head_weight(bad)
    r = run_cli("validate", bad)
    assert r.exit_code == 2 and "validation failed" in r.output and "logits_BlV" in r.output


def test_validate_refuses_another_model(tiny_export):
    r = run_cli("validate", tiny_export.out_dir, "--preset", "small")
    assert r.exit_code == 2 and "was exported from another model" in r.output


def test_export_is_deterministic_and_replaces_its_own_export(tiny_export, tmp_path):
    """The CLI exports the same model into a directory holding a copy of its first export: nothing
    to do while the copy is intact; once a file changed, the copy is replaced (nothing temporary
    or old left) by graphs and weights byte-identical to the first export, and what the export did
    not write (a user's file, build-engines' engines/) is still there."""
    again = tmp_path / "again"
    shutil.copytree(tiny_export.out_dir, again)
    (again / "marker").write_text("only in the old export")
    (again / "engines" / "tensorrt-rtx-sm89").mkdir(parents=True)
    (again / "engines" / "tensorrt-rtx-sm89" / "cond.plan").write_bytes(b"a plan")
    before = {p.name: p.stat().st_ino for p in again.iterdir() if p.name in tiny_export.manifest["files"]}
    r = run_cli("export", "--preset", "tiny", "--out", again, "--max-batch", 2)
    assert r.exit_code == 0 and "is up to date" in r.output, r.output  # the copy is this very export
    (again / "cond.onnx").write_bytes(b"changed")  # ... until a file differs: then it is exported again
    r = run_cli("export", "--preset", "tiny", "--out", again, "--max-batch", 2)
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "weights.bin" in r.output
    assert (again / "marker").read_text() == "only in the old export"  # not the export's: kept
    assert (again / "engines" / "tensorrt-rtx-sm89" / "cond.plan").read_bytes() == b"a plan"
    assert all((again / n).stat().st_ino != ino for n, ino in before.items() if (again / n).exists())
    for name, entry in tiny_export.manifest["files"].items():
        assert (again / name).read_bytes() == (tiny_export.out_dir / name).read_bytes(), name
    assert json.loads((again / MANIFEST).read_text())["files"] == tiny_export.manifest["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]  # no temporary or old directory left
