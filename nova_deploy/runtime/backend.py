"""The one interface every runtime backend implements, and the checks every backend shares.

    backend = open_backend("onnxruntime", export_dir, device="cpu")
    backend.activate()                                  # load every graph once
    outs = backend.infer("scale_03", feeds, out=bufs)   # named torch tensors in, named tensors out
    backend.deactivate()                                # free sessions / engines / device memory

Tensors are torch tensors on the backend's device (CPU or CUDA), contiguous. `infer` checks every
feed against the graph's spec (name, dtype, rank, static dims, each symbolic dim inside its
min..max range and equal wherever it appears) before any backend sees it, derives every output's
shape from the input dims, and writes outputs into the tensors given in `out` (preallocated
buffers: the KV and residual caches) or into tensors it allocates. Whether an output is written
in place by the library (ONNX Runtime IOBinding, TensorRT tensor addresses) or copied after the
call is the backend's business.

The runtime's own executor calls `infer_owned` instead: it owns every buffer it passes, so only
the shapes can change between calls, and each distinct set of shapes is checked in full (the
checks `infer` makes) the first time it is seen, not on every call.

Backends are one file each under nova_deploy.runtime.backends and imported only when asked for,
so that the runtime itself never imports onnxruntime or tensorrt.
"""
from abc import ABC, abstractmethod
from typing import Dict, Mapping, Optional, Set, Tuple

import torch

from nova_deploy.errors import GraphRunError, InvalidArgument, NovaDeployError
from nova_deploy.export.spec import GraphSpec

# a few thousand shape sets are far more than a generation pattern produces; the memo is
# cleared past this many so that a long-running server's memo stays bounded
_MAX_CHECKED_SHAPES = 4096


class Backend(ABC):
    """Runs the graphs of one export directory on one device."""

    name: str = ""

    def __init__(self, export, device: torch.device, threads: Optional[int] = None):
        self.export = export  # nova_deploy.artifacts.export_dir.ExportDir, with its spec
        self.spec = export.spec
        self.device = torch.device(device)
        self.threads = threads
        self.active = False
        self._graphs: Dict[str, GraphSpec] = {g.name: g for g in self.spec.graphs}
        self._checked: Set[Tuple] = set()  # shape sets infer_owned has checked

    @property
    def label(self) -> str:
        """The backend as reports name it: its name, and any option that changes what it computes."""
        return self.name

    # ------------------------------------------------------------------ what a backend implements
    @abstractmethod
    def activate(self) -> None:
        """Load every graph (sessions, engines, modules); idempotent."""

    @abstractmethod
    def deactivate(self) -> None:
        """Release everything activate() loaded; idempotent."""

    @abstractmethod
    def _run(self, g: GraphSpec, feeds: Mapping[str, torch.Tensor], outputs: Dict[str, torch.Tensor]) -> None:
        """Compute g on the checked feeds, writing every output into outputs[name] (preallocated,
        contiguous, on self.device, of the declared dtype and shape)."""

    # ------------------------------------------------------------------ shared
    def infer(self, graph: str, feeds: Mapping[str, torch.Tensor],
              out: Optional[Mapping[str, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
        if not self.active:
            raise RuntimeError(f"backend {self.name}: infer() before activate()")
        g = self.spec.graph(graph)
        sizes = check_feeds(g, feeds, self.device)
        outputs = output_buffers(g, sizes, self.device, out or {})
        self._call(g, feeds, outputs)
        return outputs

    def infer_owned(self, graph: str, feeds: Mapping[str, torch.Tensor],
                    out: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        """infer() for a caller that owns its buffers (the runtime's executor): every feed and every
        output in `out` is a contiguous tensor of the spec's dtype on this device, by construction.
        Names and shapes are checked as infer() checks them the first time this graph sees them;
        later calls with the same names and shapes skip the checks. Returns out."""
        if not self.active:
            raise RuntimeError(f"backend {self.name}: infer() before activate()")
        key = (graph, tuple((name, x.shape) for name, x in feeds.items()),
               tuple((name, y.shape) for name, y in out.items()))
        if key not in self._checked:
            g = self.spec.graph(graph)
            sizes = check_feeds(g, feeds, self.device)
            missing = [t.name for t in g.outputs if t.name not in out]
            if missing:
                raise InvalidArgument(f"graph {g.name}: infer_owned needs a buffer for every output; missing {missing}")
            output_buffers(g, sizes, self.device, out)
            if len(self._checked) >= _MAX_CHECKED_SHAPES:
                self._checked.clear()
            self._checked.add(key)
        self._call(self._graphs[graph], feeds, out)
        return out

    def _call(self, g: GraphSpec, feeds: Mapping[str, torch.Tensor], outputs: Dict[str, torch.Tensor]) -> None:
        try:
            self._run(g, feeds, outputs)
        except (NovaDeployError, MemoryError):
            raise
        except Exception as e:  # each library raises its own types (ORT's Fail, torch's IndexError, ...)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise GraphRunError(f"graph {g.name} failed on backend {self.name}: {first[:300]} (does the export "
                                f"still match its manifest? `nova-deploy validate {self.export.path}` checks it)") from e

    def __enter__(self):
        self.activate()
        return self

    def __exit__(self, *exc):
        self.deactivate()


def check_feeds(g: GraphSpec, feeds: Mapping[str, torch.Tensor], device: torch.device) -> Dict[str, int]:
    """The size of every symbolic dim of g, read from the feeds; InvalidArgument naming the first
    input that is missing, unexpected, or of the wrong dtype, device, layout or shape."""
    want = [t.name for t in g.inputs]
    missing = [n for n in want if n not in feeds]
    extra = sorted(set(feeds) - set(want))
    if missing or extra:
        raise InvalidArgument(f"graph {g.name}: " + "; ".join(
            ([f"missing inputs {missing}"] if missing else []) + ([f"unexpected inputs {extra}"] if extra else []))
            + f" (inputs: {', '.join(want)})")
    for t in g.inputs:
        x = feeds[t.name]
        if not isinstance(x, torch.Tensor):
            raise InvalidArgument(f"graph {g.name}: input {t.name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype != t.torch_dtype:
            raise InvalidArgument(f"graph {g.name}: input {t.name} has dtype {x.dtype}, the graph takes {t.dtype}")
        if x.device != device and not (device.type == x.device.type == "cuda" and device.index is None):
            raise InvalidArgument(f"graph {g.name}: input {t.name} is on {x.device}, the backend runs on {device}")
    sizes = g.read_sizes({name: x.shape for name, x in feeds.items()})
    for t in g.inputs:
        if not feeds[t.name].is_contiguous():  # backends bind inputs by address
            raise InvalidArgument(f"graph {g.name}: input {t.name} is not contiguous")
    return sizes


def output_buffers(g: GraphSpec, sizes: Mapping[str, int], device: torch.device,
                   out: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A tensor for every output: the caller's where given (checked), else a new one."""
    unknown = sorted(set(out) - {t.name for t in g.outputs})
    if unknown:
        raise InvalidArgument(f"graph {g.name}: no outputs named {unknown}")
    result = {}
    for t in g.outputs:
        shape, dtype = g.shape_at(t, sizes), t.torch_dtype
        buf = out.get(t.name)
        if buf is None:
            buf = torch.empty(shape, dtype=dtype, device=device)
        elif tuple(buf.shape) != shape or buf.dtype != dtype or not buf.is_contiguous():
            raise InvalidArgument(f"graph {g.name}: output buffer {t.name} is {tuple(buf.shape)} {buf.dtype}"
                                  f"{'' if buf.is_contiguous() else ' non-contiguous'}; needs contiguous {shape} {dtype}")
        result[t.name] = buf
    return result
