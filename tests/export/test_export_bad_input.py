"""Bad input to export: one clear error (InvalidArgument / ExportError, exit 2 on the CLI), and no
directory left behind that looks like a complete export."""
import json

import onnx_ir as ir
import pytest
import torch
from onnx import TensorProto, helper

from cli_runner import run_cli
from nova_deploy.artifacts.manifest import FORMAT, FORMAT_VERSION
from nova_deploy.artifacts.names import MANIFEST
from nova_deploy.errors import ExportError, InvalidArgument
from nova_deploy.export import exporter
from nova_deploy.export.exporter import export_model
from nova_deploy.export.precision import check_representable
from export_sources import one_thread, preset_source  # noqa: F401  (one_thread: autouse fixture)


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir())


@pytest.mark.parametrize("args, message", [
    (("--opset", 12), "opset 12 is below 18, the lowest these graphs need"),
    (("--opset", 40), "opset 40 is above 23"),
    (("--min-keep", 1.5), "the profile of dim kept_0 is empty"),
    (("--prune-from", 0), "scale 0 has no previous scale"),
    (("--prune-from", 9), "valid: 1..3, or 4 for no pruning"),
    (("--max-batch", 0), "max_batch must be an integer in >= 1"),
    (("--precision", "int8"), "'int8' is not one of 'fp32', 'fp16', 'bf16'"),
])
def test_bad_options_exit_2_before_writing(tmp_path, args, message):
    out = tmp_path / "engines" / "tiny"
    r = run_cli("export", "--preset", "tiny", "--out", out, *args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert not out.exists() and not any(p.name.startswith(".") for p in tmp_path.rglob("*"))


def test_missing_and_corrupt_checkpoints(tmp_path):
    r = run_cli("export", "--checkpoint", tmp_path / "nope.pth", "--vae", tmp_path / "nope_vae.pth", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "no such checkpoint file" in r.output
    bad = tmp_path / "var.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    r = run_cli("export", "--checkpoint", bad, "--vae", bad, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "not a readable safetensors file" in r.output
    assert leftovers(tmp_path) == ["var.safetensors"]


def _fake_export_dir(path, fingerprint="0" * 64):
    path.mkdir(parents=True)
    (path / MANIFEST).write_text(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                                             "model": {"fingerprint": fingerprint, "description": "preset other"}}))
    (path / "scale_00.onnx").write_bytes(b"theirs")


def test_out_holding_another_models_export_is_refused(tmp_path):
    out = tmp_path / "engines" / "x"
    _fake_export_dir(out)
    r = run_cli("export", "--preset", "tiny", "--out", out)
    assert r.exit_code == 2 and "holds the export of a different model (preset other" in r.output
    assert (out / "scale_00.onnx").read_bytes() == b"theirs"
    assert leftovers(out.parent) == ["x"]


def test_out_that_is_not_an_export_is_refused(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.png").write_bytes(b"png")
    r = run_cli("export", "--preset", "tiny", "--out", out)
    assert r.exit_code == 2 and "not an export directory" in r.output
    assert leftovers(out) == ["cat.png"]


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    r = run_cli("export", "--preset", "tiny", "--out", blocker / "engines" / "x")
    assert r.exit_code == 2 and "cannot create the parent directory" in r.output
    assert leftovers(tmp_path) == ["file"]


def test_read_only_parent(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes to read-only directories")
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        r = run_cli("export", "--preset", "tiny", "--out", parent / "x")
        assert r.exit_code == 2 and "cannot write to" in r.output
    finally:
        parent.chmod(0o755)


def test_precision_that_cannot_hold_the_weights(tmp_path):
    src = preset_source("tiny")
    with torch.no_grad():
        src.var.blocks[0].ffn.fc1.weight[0, 0] = 1e6  # beyond fp16's +-65504
    with pytest.raises(InvalidArgument, match=r"precision fp16 cannot hold 1 weight tensor\(s\).*blocks.0.ffn.fc1.weight"):
        check_representable(src.var, "fp16")
    check_representable(src.var, "bf16")  # bf16 has fp32's range
    with pytest.raises(InvalidArgument, match="cannot hold"):
        export_model(src, tmp_path / "x", precision="fp16")
    assert leftovers(tmp_path) == []


def test_a_failing_trace_leaves_nothing(tmp_path, monkeypatch):
    def broken(module, g, example, opset):
        raise ExportError(f"graph {g.name}: torch.onnx.export failed: simulated")

    monkeypatch.setattr(exporter, "export_graph", broken)
    with pytest.raises(ExportError, match="simulated"):
        export_model(preset_source("tiny"), tmp_path / "engines" / "x", max_batch=2)
    assert leftovers(tmp_path / "engines") == []


def test_failed_validation_is_kept_aside_and_not_marked_valid(tmp_path, monkeypatch):
    """Graphs that do not implement the spec (here: a placeholder graph for every one) fail
    validation; every problem is listed, --out is not created, the manifest says valid: false."""
    def placeholder(module, g, example, opset):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], g.name, [x],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        return ir.serde.deserialize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))

    monkeypatch.setattr(exporter, "export_graph", placeholder)
    out = tmp_path / "x"
    with pytest.raises(ExportError) as e:
        export_model(preset_source("tiny"), out, max_batch=2)
    text = str(e.value)
    assert "validation failed" in text and "input names ['x'] != spec ['label_B']" in text
    assert "decoder: output names ['y'] != spec ['img_B3HW']" in text
    assert not out.exists()
    manifest = json.loads((tmp_path / "x.failed" / MANIFEST).read_text())
    assert manifest["valid"] is False and manifest["validation"]["failures"]
    assert leftovers(tmp_path) == ["x.failed"]


def test_help_lists_export_and_validate():
    r = run_cli("--help")
    assert r.exit_code == 0 and "export" in r.output and "validate" in r.output
    r = run_cli("export", "--help")
    assert r.exit_code == 0
    for option in ("--out", "--precision", "--max-batch", "--opset", "--prune-from", "--min-keep"):
        assert option in r.output
