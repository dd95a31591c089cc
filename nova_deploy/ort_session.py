"""The one way nova-deploy opens an ONNX Runtime session: export validation and the runtime's
onnxruntime backend both call `open_session`, so threads, spinning, arenas, logging, shared
weights and providers are chosen in one place. onnxruntime is imported only when a session is made.

Defaults and why:
- intra-op threads as asked, inter-op 1: the graphs are one chain of ops;
- no spinning: every session owns a thread pool whose workers spin after each run by default;
  with many sessions and torch's own pool (sampling) between graph calls, spinning workers took
  the cores from whoever ran next (docs/RUNTIME.md has the measurement);
- no memory arena (nor memory pattern): an arena per session keeps each session's peak
  activations for good; 22 d16 sessions at batch 8 went past 24 GB with them;
- shared weights (export.shared_weights.SharedWeights): weights.bin mapped once, every session
  given OrtValues viewing it, and no MLAS pre-packing (which would copy each MatMul weight);
- providers by device: CPU; on a CUDA device the CUDA execution provider (then CPU for what it
  lacks), asked for only when torch sees that device and this onnxruntime has the provider.
"""
from pathlib import Path

import torch

from nova_deploy.errors import BackendUnavailable, InvalidArgument

LOG_ERRORS_ONLY = 3  # ORT's severity: 0 verbose .. 4 fatal; its warnings are about its own internals


def providers_for(device) -> list:
    """ONNX Runtime execution providers for a torch device; BackendUnavailable when it has none."""
    import onnxruntime as ort

    device = torch.device(device)
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type != "cuda":
        raise InvalidArgument(f"backend onnxruntime runs on cpu or cuda, not {device}")
    if not torch.cuda.is_available():
        raise BackendUnavailable("backend onnxruntime: device cuda requested but torch sees no CUDA device")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise BackendUnavailable(f"backend onnxruntime: this onnxruntime has no CUDA execution provider "
                                 f"(available: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu")
    return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]


def open_session(path: Path, *, threads: int, device="cpu", weights=None, spin: bool = False,
                 memory_arena: bool = False, optimize: bool = True):
    """An InferenceSession of the graph at path. weights: a SharedWeights the session takes the
    graph's weights.bin initializers from (the caller keeps it alive as long as the session);
    optimize=False keeps the graph exactly as written (bf16 emulation's rounding casts).
    Raises what ONNX Runtime raises for a graph it cannot load."""
    import onnxruntime as ort

    providers = providers_for(device)
    so = ort.SessionOptions()
    so.log_severity_level = LOG_ERRORS_ONLY
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if not memory_arena:
        so.enable_cpu_mem_arena = False
        so.enable_mem_pattern = False
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if weights is not None:
        weights.add_to(so, path)
    return ort.InferenceSession(str(path), so, providers=providers)
