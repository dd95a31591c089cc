"""`nova-deploy triton-repo`: the repository it writes, bad input, and the export check at load."""
import hashlib
import json
import os
import shutil

import pytest
import torch

from cli_runner import run_cli
from export_sources import one_thread  # noqa: F401  (autouse: one CPU thread)
from nova_deploy.errors import InvalidArgument
from nova_deploy.export.manifest import MANIFEST
from nova_deploy.runtime.pipeline import Pipeline
from nova_deploy.serving.config import preferred_batch_sizes
from nova_deploy.serving.repository import MARKER, open_pipeline

pytestmark = pytest.mark.slow  # needs the session's small export


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entries(parent):
    return sorted(p.name for p in parent.iterdir())


def test_repository_layout_and_config(small_export, tmp_path):
    repo = tmp_path / "repo"
    r = run_cli("triton-repo", small_export.out_dir, "--out", repo, "--instances", "3", "--max-queue-delay-us", "700",
                "--name", "var_small")
    assert r.exit_code == 0, r.output
    model = repo / "var_small"
    assert _entries(repo) == sorted([MARKER, "var_small"])
    assert _entries(model) == ["1", "config.pbtxt"] and _entries(model / "1") == ["export", "model.py"]
    config = (model / "config.pbtxt").read_text()
    for line in ['name: "var_small"', 'backend: "python"', "max_batch_size: 2",
                 '{ name: "class_id", data_type: TYPE_INT32, dims: [ 1 ] }',
                 '{ name: "seed", data_type: TYPE_INT64, dims: [ 1 ] }',
                 '{ name: "policy", data_type: TYPE_STRING, dims: [ 1 ], optional: true }',
                 '{ name: "draw", data_type: TYPE_STRING, dims: [ 1 ], optional: true }',
                 '{ name: "image", data_type: TYPE_UINT8, dims: [ 3, ',
                 "preferred_batch_size: [ 2 ]", "max_queue_delay_microseconds: 700", "{ count: 3, kind: KIND_CPU }",
                 '{ key: "nova_backend", value: { string_value: "onnxruntime" } }']:
        assert line in config, line
    copied = model / "1" / "export"
    for name, entry in small_export.manifest["files"].items():
        assert _sha256(copied / name) == entry["sha256"], name
    assert not [p for p in repo.rglob("*") if p.is_symlink()]
    assert json.loads((repo / MARKER).read_text())["options"]["max_batch"] == 2


def test_no_dynamic_batching_and_preferred_sizes(small_export, tmp_path):
    r = run_cli("triton-repo", small_export.out_dir, "--out", tmp_path / "repo", "--no-dynamic-batching")
    assert r.exit_code == 0, r.output
    assert "dynamic_batching" not in (tmp_path / "repo" / "nova" / "config.pbtxt").read_text()
    assert preferred_batch_sizes(8) == [2, 4, 8] and preferred_batch_sizes(6) == [2, 4, 6]
    assert preferred_batch_sizes(1) == [1]


def test_symlinked_files_are_copied_and_a_repository_is_replaced_whole(small_export, tmp_path):
    export = shutil.copytree(small_export.out_dir, tmp_path / "export")
    (export / "store").mkdir()  # a link inside the export (one leading out is refused by the loader)
    elsewhere = export / "store" / "weights.bin"
    shutil.move(export / "weights.bin", elsewhere)
    os.symlink(elsewhere, export / "weights.bin")
    repo = tmp_path / "out" / "repo"
    repo.parent.mkdir()
    assert run_cli("triton-repo", export, "--out", repo).exit_code == 0
    weights = repo / "nova" / "1" / "export" / "weights.bin"
    assert not weights.is_symlink() and weights.read_bytes() == elsewhere.read_bytes()
    r = run_cli("triton-repo", export, "--out", repo, "--name", "renamed")
    assert r.exit_code == 0, r.output
    assert _entries(repo) == sorted([MARKER, "renamed"])  # the earlier model went with the earlier repository
    assert _entries(repo.parent) == ["repo"]  # no temporary directory left


@pytest.mark.parametrize("case, args, message", [
    ("not_export", (), "not an export directory"),
    ("foreign_out", (), "is not a repository written by triton-repo"),
    ("ok", ("--backend", "tensorrt", "--device", "cuda"), "no TensorRT engines for --backend tensorrt"),
    ("ok", ("--backend", "tensorrt"), "backend tensorrt runs on cuda only"),
    ("ok", ("--backend", "tflite"), "unknown backend 'tflite'; valid: onnxruntime, tensorrt, torch"),
    ("ok", ("--device", "tpu"), "unknown device 'tpu'; valid: cpu, cuda"),
    ("ok", ("--max-batch", "3"), "--max-batch 3: this export takes at most 2"),
    ("ok", ("--max-batch", "0"), "--max-batch must be >= 1"),
    ("ok", ("--instances", "0"), "--instances must be >= 1"),
    ("ok", ("--name", "a/b"), "model name 'a/b'"),
    ("tampered", (), "sha256 differs from the manifest"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(small_export, tmp_path, case, args, message):
    export = shutil.copytree(small_export.out_dir, tmp_path / "export")
    out = tmp_path / "out" / "repo"
    out.parent.mkdir()
    if case == "not_export":
        (export / MANIFEST).unlink()
    elif case == "foreign_out":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "tampered":
        data = bytearray((export / "weights.bin").read_bytes())
        data[100] ^= 1
        (export / "weights.bin").write_bytes(bytes(data))
    before = _entries(out.parent)
    r = run_cli("triton-repo", export, "--out", out, *args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output
    assert _entries(out.parent) == before
    if case == "foreign_out":
        assert (out / "keep.txt").read_text() == "mine"


def test_the_model_refuses_at_load_an_export_changed_after_writing(small_export, tmp_path):
    repo = tmp_path / "repo"
    assert run_cli("triton-repo", small_export.out_dir, "--out", repo).exit_code == 0
    version = repo / "nova" / "1"
    with open_pipeline(version, "onnxruntime", "cpu", 1) as pipe:
        assert pipe.max_batch == 2
    graph = version / "export" / small_export.manifest["graphs"]["decoder"]["file"]
    data = bytearray(graph.read_bytes())
    data[-10] ^= 1
    graph.write_bytes(bytes(data))
    with pytest.raises(InvalidArgument, match="sha256 differs from the manifest"):
        open_pipeline(version, "onnxruntime", "cpu", 1)


def test_torch_backend_repository_carries_its_checkpoints(small_export, tmp_path):
    """--backend torch copies the checkpoints; moved to another place with the originals gone, the
    served Pipeline reloads the copies and gives the ONNX Runtime pipeline's tokens."""
    source = small_export.manifest["model"]["source"]
    assert source["kind"] == "checkpoint"
    staged = tmp_path / "staged"
    shutil.copytree(os.path.dirname(source["var"]), staged)
    export = staged / os.path.relpath(small_export.out_dir, os.path.dirname(source["var"]))
    manifest = json.loads((export / MANIFEST).read_text())
    manifest["model"]["source"].update(var=str(staged / os.path.basename(source["var"])),
                                       vae=str(staged / os.path.basename(source["vae"])))
    (export / MANIFEST).write_text(json.dumps(manifest))
    repo = tmp_path / "repo"
    r = run_cli("triton-repo", export, "--out", repo, "--backend", "torch")
    assert r.exit_code == 0, r.output
    shutil.rmtree(staged)
    moved = shutil.move(repo, tmp_path / "moved")
    assert _entries(moved / "nova" / "1" / "checkpoints") == ["source.json", "vae.safetensors", "var.safetensors"]
    with open_pipeline(moved / "nova" / "1", "torch", "cpu", 1) as served, \
            Pipeline.from_dir(small_export.out_dir, backend="onnxruntime", threads=1) as reference:
        a = served.generate([1, 4], seeds=[5, 6])
        b = reference.generate([1, 4], seeds=[5, 6])
    assert all(torch.equal(x, y) for x, y in zip(a.tokens, b.tokens))
