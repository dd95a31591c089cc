"""One import shim over the two TensorRT libraries.

`tensorrt` (10.x, 11.x) and `tensorrt_rtx` share the builder/runtime API. The differences that
matter here, and how each is handled:

- typing: every network is built strongly typed (the precision comes from the exported ONNX graph,
  see `nova-deploy export --precision`). TensorRT-RTX and TensorRT 11 are always strongly typed
  (11 ignores the creation flag); TensorRT 10.x needs NetworkDefinitionCreationFlag.STRONGLY_TYPED,
  without which it would pick precisions itself. No BuilderFlag.FP16/BF16 is ever set (11 removed them).
- targets: TensorRT-RTX builds ahead of time, without a GPU, for the compute capabilities given to
  IBuilderConfig.set_compute_capability; TensorRT builds for the GPU it runs on (targets.py).
- timing cache: a no-op in TensorRT-RTX (>= 1.2, deprecated), used by TensorRT.

Only tensorrt_rtx (1.7) is installed and exercised by this project's tests; the `tensorrt` paths
follow NVIDIA's documented Python API and are not run here.
"""
import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import List, Optional

from nova_deploy.errors import BackendUnavailable, InvalidArgument

# CLI name -> (Python module, how to install it)
LIBRARIES = {
    "tensorrt-rtx": ("tensorrt_rtx", "pip install tensorrt-rtx (builds without a GPU; runs on RTX/Ampere+ GPUs)"),
    "tensorrt": ("tensorrt", "pip install tensorrt, or use NVIDIA's TensorRT container (see docker/)"),
}


@dataclass(frozen=True)
class Library:
    name: str  # "tensorrt" or "tensorrt-rtx"
    trt: ModuleType
    version: str

    @property
    def is_rtx(self) -> bool:
        return self.name == "tensorrt-rtx"

    def create_network(self, builder):
        flags = 0
        strongly_typed = getattr(self.trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if strongly_typed is not None:  # required on 10.x; accepted (and implied) by 11.x and RTX
            flags |= 1 << int(strongly_typed)
        return builder.create_network(flags)

    def set_timing_cache(self, config, blob: bytes):
        """A timing cache for TensorRT; None for TensorRT-RTX, where timing caches are no-ops."""
        if self.is_rtx:
            return None
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
        return cache


def load_library(name: str) -> Library:
    """The library by CLI name; BackendUnavailable saying how to install it when it is missing."""
    if name not in LIBRARIES:
        raise InvalidArgument(f"unknown TensorRT library {name!r}; valid: {', '.join(LIBRARIES)}")
    module, install = LIBRARIES[name]
    try:
        trt = importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailable(f"{name} is not installed (import {module}: {e}); {install}") from None
    return Library(name, trt, str(trt.__version__))


def installed_libraries() -> List[str]:
    return [name for name, (module, _) in LIBRARIES.items() if importlib.util.find_spec(module) is not None]


def default_library() -> Optional[str]:
    """tensorrt-rtx where installed (it builds without a GPU), else tensorrt, else None."""
    found = installed_libraries()
    return found[0] if found else None
