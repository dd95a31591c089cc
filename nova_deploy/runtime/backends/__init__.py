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


def backend_class(name: str):
    if name not in BACKENDS:
        raise InvalidArgument(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:  # the backend's library itself is missing
        raise BackendUnavailable(f"backend {name} is not available: {e}") from None


def open_backend(name: str, export, device="cpu", threads: Optional[int] = None):
    """An activated backend for an ExportDir; BackendUnavailable when its library or device is missing."""
    if not isinstance(device, torch.device):
        device = parse_device(device)
    backend = backend_class(name)(export, device, check_threads(threads))
    backend.activate()
    return backend
