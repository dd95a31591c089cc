"""The runtime as users embed it: buffers reused in place, concurrent calls, refused input, CLI."""
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from cli_runner import run_cli
from export_sources import one_thread  # noqa: F401  (autouse: one CPU thread)
from nova_deploy.artifacts.names import MANIFEST
from nova_deploy.errors import BackendUnavailable, InvalidArgument
from nova_deploy.runtime.pipeline import Pipeline

pytestmark = pytest.mark.slow  # needs the session's small export


@pytest.fixture(scope="module")
def pipe(small_export):
    with Pipeline.from_dir(small_export.out_dir, backend="onnxruntime", threads=1) as p:
        yield p


@pytest.fixture
def export_copy(small_export, tmp_path):
    return shutil.copytree(small_export.out_dir, tmp_path / "export")


def test_buffers_are_allocated_once_per_batch_and_outputs_land_in_them(pipe):
    pipe.generate([1], seed=0, policy="nova")
    bufs = pipe.buffers.take(1)
    pipe.buffers.give(bufs)
    kv_ptr, logits_ptr = bufs.kv.turns[0].flat.data_ptr(), bufs.logits.flat.data_ptr()
    pipe.generate([2], seed=1, policy="nova")
    again = pipe.buffers.take(1)
    pipe.buffers.give(again)
    assert again is bufs and again.kv.turns[0].flat.data_ptr() == kv_ptr and again.logits.flat.data_ptr() == logits_ptr
    # ONNX Runtime wrote the last scale's logits straight into the preallocated buffer
    last = pipe.spec.patch_nums[-1] ** 2
    out = pipe.backend.infer("decoder", {"f_hat_BChw": torch.zeros(1, pipe.spec.vae.z_channels, 8, 8)},
                             {"img_B3HW": bufs.image[:1]})
    assert out["img_B3HW"].data_ptr() == bufs.image.data_ptr() and last == 64


def test_concurrent_calls_give_the_images_of_sequential_calls(pipe):
    jobs = [([0, 1], 3, "nova"), ([4], 4, "none"), ([5, 6], 5, "fastvar"), ([7, 8], 6, "nova")]
    sequential = [pipe.generate(labels, seed=seed, policy=policy).images for labels, seed, policy in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(pipe.generate, labels, seed=seed, policy=policy) for labels, seed, policy in jobs]
        concurrent = [f.result().images for f in futures]
    for a, b in zip(sequential, concurrent):
        assert torch.equal(a, b)


def test_trace_and_timing(pipe):
    r = pipe.generate([3, 4], seed=2, policy="nova", want_trace=True)
    assert len(r.trace) == 2 and len(r.trace[0]["entropy_curve"]) == len(pipe.spec.patch_nums)
    assert 0 < r.timing.backend_s < r.timing.total_s
    assert set(r.timing.per_graph_s) >= {"cond", "scale_00", "decoder", "final_fhat"}


@pytest.mark.parametrize("call, message", [
    (dict(labels=[1, 2, 3]), "batch of 3 images: this export takes 1..2"),
    (dict(labels=[11]), "class id [11] out of range"),
    (dict(labels=[1], policy="fixed:0,0.5,0,0,0,0,0"), "may prune scale 1, but this export prunes only from scale 2"),
    (dict(labels=[1], policy="warp"), "unknown policy 'warp'"),
    (dict(labels=[1], top_p=1.5), "top_p"),
])
def test_bad_calls_are_refused(pipe, call, message):
    with pytest.raises(InvalidArgument) as e:
        pipe.generate(**call)
    assert message in str(e.value)


def test_a_changed_file_is_refused(export_copy):
    with open(export_copy / "scale_03.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(InvalidArgument, match="scale_03.onnx: .* bytes, the manifest says"):
        Pipeline.from_dir(export_copy)
    weights = export_copy / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[1000] ^= 1
    weights.write_bytes(bytes(data))
    (export_copy / "scale_03.onnx").write_bytes((export_copy / "scale_03.onnx").read_bytes()[:-1])
    with pytest.raises(InvalidArgument, match="weights.bin: sha256 differs"):
        Pipeline.from_dir(export_copy)


def test_an_export_not_marked_valid_is_refused(export_copy):
    manifest = json.loads((export_copy / MANIFEST).read_text())
    manifest["valid"] = False
    (export_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InvalidArgument, match="not marked valid"):
        Pipeline.from_dir(export_copy)


def test_torch_backend_refuses_a_source_that_is_not_the_exported_model(export_copy, tmp_path):
    manifest = json.loads((export_copy / MANIFEST).read_text())
    manifest["model"]["source"] = {"kind": "preset", "preset": "small", "seed": 0}  # official init, not the export
    (export_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InvalidArgument, match="fingerprints differ"):
        Pipeline.from_dir(export_copy, backend="torch")


def test_tensorrt_without_its_runtime_is_unavailable(small_export):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("full TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailable):
        Pipeline.from_dir(small_export.out_dir, backend="tensorrt")


def test_cli_generates_from_engines(small_export, tmp_path):
    out, trace = tmp_path / "grid.png", tmp_path / "trace.json"
    r = run_cli("generate", "--engines", small_export.out_dir, "--class", 3, "--class", 4,
                "--policy", "nova", "--trace", trace, "--threads", 1, "--out", out)
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 0 and len(json.loads(trace.read_text())["images"]) == 2
    assert "outside" in r.output


@pytest.mark.parametrize("args, message", [
    (["--backend", "tensorrt"], "tensorrt backend runs on a CUDA GPU"),
    (["--class", "1", "--class", "2", "--class", "3"], "error: batch of 3 images"),
    (["--device", "cuda"], "error: backend onnxruntime: device cuda requested"),
    (["--preset", "small"], "error: --engines runs the exported model"),
])
def test_cli_bad_runtime_input_is_one_line_and_exit_2(small_export, tmp_path, args, message):
    if args[0] == "--device" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = run_cli("generate", "--engines", small_export.out_dir, "--out", tmp_path / "g.png", *args)
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "g.png").exists()


def test_a_failed_request_leaves_the_pipeline_usable(pipe, monkeypatch):
    want = pipe.generate([1, 2], seed=9, policy="nova").images
    real_infer = pipe.backend.infer_owned  # the backend call the runtime's executor makes

    def failing(graph, feeds, out):
        if graph == "scale_04":
            raise RuntimeError("simulated failure inside the backend")
        return real_infer(graph, feeds, out)

    monkeypatch.setattr(pipe.backend, "infer_owned", failing)
    with pytest.raises(RuntimeError, match="simulated failure"):
        pipe.generate([1, 2], seed=9, policy="nova")
    monkeypatch.setattr(pipe.backend, "infer_owned", real_infer)
    assert torch.equal(pipe.generate([1, 2], seed=9, policy="nova").images, want)
