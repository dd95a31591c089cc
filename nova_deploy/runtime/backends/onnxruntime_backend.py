"""ONNX Runtime backend: one session per graph, one copy of the weights for all of them.

Weights: every graph's external initializers point into the export's single weights.bin. The
backend maps that file once (read-only) and hands each session OrtValues that view the mapping
(`SessionOptions.add_initializer`), so the sessions neither read nor copy the weights themselves.
MLAS pre-packs constant MatMul weights into per-session copies: `share_prepacked=True` (default)
maps the weights once (export.shared_weights) and disables pre-packing so that one copy remains;
False loads every session the ordinary way, with pre-packing; `memory_arena=True` gives each
session ORT's default CPU memory arena. docs/RUNTIME.md has what each costs and saves.

I/O: IOBinding binds every input and every output by address, so outputs are written straight
into the runtime's preallocated buffers (CPU memory, or torch CUDA tensors with the CUDA
execution provider). The CUDA provider is requested only when torch sees a GPU and ORT offers it.
Each thread keeps one IOBinding per session and rebinds only the tensors whose address or shape
changed since its last call: the runtime's buffers are reused, so most bindings stay as they are,
and binding costs as much as running one of the reference model's small graphs.
"""
import threading
from typing import Dict, Mapping, Optional, Tuple

import onnxruntime as ort
import torch

from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.errors import BackendUnavailable, NovaDeployError
from nova_deploy.export.shared_weights import SharedWeights
from nova_deploy.export.spec import GraphSpec
from nova_deploy.ort_session import open_session, providers_for
from nova_deploy.runtime.backend import Backend


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, export, device, threads: Optional[int] = None, share_prepacked: bool = True,
                 memory_arena: bool = False, spin: bool = False):
        super().__init__(export, device, threads)
        self.share_prepacked = share_prepacked
        # an arena per session keeps each session's peak activations for good: 22 d16 sessions at
        # batch 8 plus the buffers went past 24 GB; without arenas, large blocks go back after each op
        self.memory_arena = memory_arena
        self.spin = spin  # ORT's default (True) lets idle intra-op workers spin-wait
        self._local = threading.local()  # per thread: graph -> (session, IOBinding, what it binds)

    def activate(self) -> None:
        if self.active:
            return
        providers_for(self.device)  # a missing device or provider is refused before the bf16 check
        if self.spec.precision == "bf16" and self.device.type == "cpu":
            raise BackendUnavailable("bf16 graphs do not run on ONNX Runtime's CPU execution provider (it has no "
                                     "bf16 kernels; the export validated them by emulation): use --device cuda, "
                                     "the tensorrt backend, or an fp16/fp32 export on CPU")
        self.weights = SharedWeights(self.export.file(WEIGHTS_FILE)) if self.share_prepacked else None
        self.sessions: Dict[str, ort.InferenceSession] = {}
        threads = int(self.threads or torch.get_num_threads())
        for g in self.spec.graphs:
            path = self.export.file(g.file)
            try:
                self.sessions[g.name] = open_session(path, threads=threads, device=self.device, weights=self.weights,
                                                     spin=self.spin, memory_arena=self.memory_arena)
            except NovaDeployError:
                raise
            except Exception as e:  # ORT raises its own types (Fail, NotImplemented, InvalidGraph, ...)
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise BackendUnavailable(f"onnxruntime {ort.__version__} cannot load {path}: {first[:300]}") from e
        self._device_type = "cuda" if self.device.type == "cuda" else "cpu"
        self._device_id = self.device.index or 0
        self.active = True

    def deactivate(self) -> None:
        self.sessions = {}
        self._local = threading.local()  # every thread's bindings go with the sessions they bind
        self.weights = None
        self.active = False

    def _binding(self, g: GraphSpec) -> Tuple[ort.InferenceSession, ort.IOBinding, Dict[str, tuple]]:
        """This thread's IOBinding of g's session and the (address, shape) it holds per tensor."""
        mine = getattr(self._local, "bindings", None)
        if mine is None:
            mine = self._local.bindings = {}
        session = self.sessions[g.name]
        held = mine.get(g.name)
        if held is None or held[0] is not session:  # a session of an earlier activate()
            held = mine[g.name] = (session, session.io_binding(), {})
        return held

    def _run(self, g: GraphSpec, feeds: Mapping[str, torch.Tensor], outputs: Dict[str, torch.Tensor]) -> None:
        session, binding, bound = self._binding(g)
        for t in g.inputs:
            x = feeds[t.name]
            at = (x.data_ptr(), x.shape)
            if bound.get(t.name) != at:
                binding.bind_input(t.name, self._device_type, self._device_id, t.element.onnx, list(x.shape),
                                   at[0])
                bound[t.name] = at
        for t in g.outputs:
            y = outputs[t.name]
            at = (y.data_ptr(), y.shape)
            if bound.get(t.name) != at:
                binding.bind_output(t.name, self._device_type, self._device_id, t.element.onnx, list(y.shape),
                                    at[0])
                bound[t.name] = at
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # inputs written by torch kernels
        session.run_with_iobinding(binding)
