"""The TensorRT backend: everything up to execution (engine lookup, sidecar checks, the error
without a GPU), and execution itself where a GPU and TensorRT exist (trt_exec: skipped here)."""
import json
import shutil

import numpy as np
import pytest
import torch

from nova_deploy.engines.errors import EngineError
from nova_deploy.engines.store import sidecar_path
from nova_deploy.errors import BackendUnavailable
from nova_deploy.export.manifest import open_export
from nova_deploy.runtime.backends import backend_class
from nova_deploy.runtime.backends.tensorrt_backend import TensorRTBackend, check_sidecar, find_engines_dir


def export_of(path):
    return open_export(path, check_files=False)


def test_registry_imports_the_backend_without_tensorrt():
    assert backend_class("tensorrt") is TensorRTBackend


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_activate_without_gpu_is_backend_unavailable(built):
    backend = TensorRTBackend(export_of(built[0]), device="cpu")
    with pytest.raises(BackendUnavailable, match="runs on a CUDA GPU, not on device cpu: no CUDA GPU here; use --backend onnxruntime"):
        backend.activate()
    assert not backend.active


def test_engine_set_for_the_gpu(built_copy):
    engines = built_copy / "engines"
    assert find_engines_dir(built_copy, (8, 9), ["tensorrt-rtx"]) == engines / "tensorrt-rtx-sm89"
    with pytest.raises(EngineError, match=r"no engines for this GPU \(compute capability 8\.6\).*found "
                                          r"\['tensorrt-rtx-sm89'\].*--compute-capability 8\.6"):
        find_engines_dir(built_copy, (8, 6), ["tensorrt-rtx"])
    shutil.copytree(engines / "tensorrt-rtx-sm89", engines / "tensorrt-rtx-portable")
    assert find_engines_dir(built_copy, (8, 6), ["tensorrt-rtx"]) == engines / "tensorrt-rtx-portable"
    with pytest.raises(EngineError, match="no engines for this GPU"):
        find_engines_dir(built_copy, (7, 5), ["tensorrt-rtx"])  # portable RTX plans need Ampere or later


def test_sidecar_must_match_export_and_library(built, rtx):
    path, results = built
    export = export_of(path)
    plan = results[0].plan
    g = export.spec.graph(results[0].graph)
    sidecar = json.loads(sidecar_path(plan).read_text())
    check_sidecar(export, g, sidecar, rtx, plan)
    other_weights = dict(sidecar, fields=dict(sidecar["fields"], weights_sha256="0" * 64))
    with pytest.raises(EngineError, match="built from another weights than"):
        check_sidecar(export, g, other_weights, rtx, plan)
    older = dict(sidecar, fields=dict(sidecar["fields"], library_version="1.0.0"))
    with pytest.raises(EngineError, match=f"built by tensorrt-rtx 1.0.0, this runtime is tensorrt-rtx {rtx.version}"):
        check_sidecar(export, g, older, rtx, plan)
    with pytest.raises(EngineError, match="no readable sidecar"):
        check_sidecar(export, g, None, rtx, plan)


@pytest.mark.trt_exec
def test_engines_match_onnxruntime_on_gpu(built):
    """Runs the decoder and scale_01 engines and compares them with ONNX Runtime on the same feeds."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU: TensorRT engines cannot execute here")
    import onnxruntime as ort

    path = built[0]
    export = export_of(path)
    backend = TensorRTBackend(export, device="cuda")
    try:
        backend.activate()
    except (BackendUnavailable, EngineError) as e:
        pytest.skip(f"engines cannot run here: {e}")
    gen = torch.Generator().manual_seed(0)
    for name in ("decoder", "scale_01"):
        g = export.spec.graph(name)
        sizes = {d.name: d.opt for d in g.dims}
        feeds = {t.name: torch.randn(g.shape_at(t, sizes), generator=gen) for t in g.inputs}
        sess = ort.InferenceSession(str(path / g.file), providers=["CPUExecutionProvider"])
        want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {k: v.numpy() for k, v in feeds.items()})))
        for _ in range(3):  # eager, captured, replayed
            got = backend.infer(name, {k: v.cuda() for k, v in feeds.items()})
            for out, ref in want.items():
                np.testing.assert_allclose(got[out].cpu().numpy(), ref, rtol=1e-3, atol=1e-3, err_msg=f"{name}.{out}")
    backend.deactivate()
