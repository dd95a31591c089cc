"""Runtime backends, one per file, imported only when asked for by name."""
import importlib
from typing import Optional

import torch

from nova_deploy.bounds import check_threads, parse_device
from nova_deploy.errors import BackendUnavailable, InvalidArgument

BACKENDS = {
    "torch": ("nova_deploy.runtime.backends.torch_backend", "TorchBackend"),
    "onnxruntime": ("nova_deploy.runtime.backends.onnxruntime_backend", "OnnxRuntimeBackend"),
    "tensorrt": ("nova_deploy.runtime.backends.tensorrt_backend", "TensorRTBackend"),
}
# opt-in configurations of a backend, named wherever a backend is (--backend, Pipeline.from_dir);
# each changes the tokens or images, which `eval --engines DIR --backend NAME` scores
BACKEND_VARIANTS = {
    "torch-bf16": ("torch", {"decoder_bf16": True, "transformer_precision": "bf16"}),
}
BACKEND_NAMES = tuple(BACKENDS) + tuple(BACKEND_VARIANTS)


def backend_class(name: str):
    if name not in BACKENDS:
        raise InvalidArgument(f"unknown backend {name!r}; valid: {', '.join(BACKEND_NAMES)}")
    module, cls = BACKENDS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:  # the backend's library itself is missing
        raise BackendUnavailable(f"backend {name} is not available: {e}") from None


def open_backend(name: str, export, device="cpu", threads: Optional[int] = None):
    """An activated backend for an ExportDir; BackendUnavailable when its library or device is missing."""
    if not isinstance(device, torch.device):
        device = parse_device(device)
    base, options = BACKEND_VARIANTS.get(name, (name, {}))
    backend = backend_class(base)(export, device, check_threads(threads), **options)
    backend.activate()
    return backend
