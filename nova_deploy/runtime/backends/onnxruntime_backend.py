"""ONNX Runtime backend: one session per graph, one copy of the weights for all of them.

Weights: every graph's external initializers point into the export's single weights.bin. The
backend maps that file once (read-only) and hands each session OrtValues that view the mapping
(`SessionOptions.add_initializer`), so the sessions neither read nor copy the weights themselves.
MLAS pre-packs constant MatMul weights into per-session copies: `share_prepacked=True` (default)
disables pre-packing so that one copy remains; `memory_arena=False` drops each session's CPU memory
arena. docs/RUNTIME.md has what each costs and saves.

I/O: IOBinding binds every input and every output by address, so outputs are written straight
into the runtime's preallocated buffers (CPU memory, or torch CUDA tensors with the CUDA
execution provider). The CUDA provider is requested only when torch sees a GPU and ORT offers it.
"""
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np
import onnx
import onnxruntime as ort
import torch

from nova_deploy.errors import BackendUnavailable, InvalidArgument
from nova_deploy.export.onnx_io import WEIGHTS_FILE
from nova_deploy.export.spec import GraphSpec
from nova_deploy.runtime.backend import Backend

ONNX_TYPE = {torch.float32: onnx.TensorProto.FLOAT, torch.float16: onnx.TensorProto.FLOAT16,
             torch.bfloat16: onnx.TensorProto.BFLOAT16, torch.int64: onnx.TensorProto.INT64}
NUMPY_OF_ONNX = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16,
                 onnx.TensorProto.BFLOAT16: np.uint16, onnx.TensorProto.INT64: np.int64,
                 onnx.TensorProto.INT32: np.int32, onnx.TensorProto.DOUBLE: np.float64,
                 onnx.TensorProto.BOOL: np.bool_}


class SharedWeights:
    """weights.bin mapped once; an OrtValue viewing each distinct stored tensor."""

    def __init__(self, path: Path):
        self.map = np.memmap(path, dtype=np.uint8, mode="r")
        self._values: Dict[tuple, ort.OrtValue] = {}

    def value(self, offset: int, length: int, data_type: int, dims: List[int]) -> ort.OrtValue:
        key = (offset, length, data_type, tuple(dims))
        if key not in self._values:
            if data_type not in NUMPY_OF_ONNX:
                raise InvalidArgument(f"{WEIGHTS_FILE}: initializer of ONNX type {data_type} is not supported")
            view = self.map[offset:offset + length].view(NUMPY_OF_ONNX[data_type]).reshape(dims)
            self._values[key] = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(view, data_type)
        return self._values[key]


def external_initializers(model_path: Path) -> List[tuple]:
    """(name, offset, length, data_type, dims) of every initializer stored in weights.bin."""
    model = onnx.load(str(model_path), load_external_data=False)
    found = []
    for init in model.graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in init.external_data}
        if info.get("location") != WEIGHTS_FILE:
            raise InvalidArgument(f"{model_path}: initializer {init.name} lives in {info.get('location')!r}, "
                                  f"not the export's {WEIGHTS_FILE}")
        found.append((init.name, int(info.get("offset", 0)), int(info["length"]), init.data_type, list(init.dims)))
    return found


def _providers(device: torch.device) -> list:
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


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    writes_outputs_in_place = True

    def __init__(self, export, device, threads: Optional[int] = None, share_prepacked: bool = True,
                 memory_arena: bool = True):
        super().__init__(export, device, threads)
        self.share_prepacked = share_prepacked
        self.memory_arena = memory_arena  # False: no per-session CPU arena (less peak RSS; see docs/RUNTIME.md)

    def activate(self) -> None:
        if self.active:
            return
        providers = _providers(self.device)
        if self.spec.precision == "bf16" and self.device.type == "cpu":
            raise BackendUnavailable("bf16 graphs do not run on ONNX Runtime's CPU execution provider (it has no "
                                     "bf16 kernels; the export validated them by emulation): use --device cuda, "
                                     "the tensorrt backend, or an fp16/fp32 export on CPU")
        self.weights = SharedWeights(self.export.file(WEIGHTS_FILE))
        self.sessions: Dict[str, ort.InferenceSession] = {}
        for g in self.spec.graphs:
            path = self.export.file(g.file)
            so = ort.SessionOptions()
            so.log_severity_level = 3
            if not self.memory_arena:
                so.enable_cpu_mem_arena = False
                so.enable_mem_pattern = False
            if self.threads:
                so.intra_op_num_threads = int(self.threads)
                so.inter_op_num_threads = 1
            if self.share_prepacked:
                so.add_session_config_entry("session.disable_prepacking", "1")
            for name, offset, length, data_type, dims in external_initializers(path):
                so.add_initializer(name, self.weights.value(offset, length, data_type, dims))
            try:
                self.sessions[g.name] = ort.InferenceSession(str(path), so, providers=providers)
            except Exception as e:  # ORT raises its own types (Fail, NotImplemented, InvalidGraph, ...)
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise BackendUnavailable(f"onnxruntime {ort.__version__} cannot load {path}: {first[:300]}") from e
        self._device_type = "cuda" if self.device.type == "cuda" else "cpu"
        self._device_id = self.device.index or 0
        self.active = True

    def deactivate(self) -> None:
        self.sessions = {}
        self.weights = None
        self.active = False

    def _run(self, g: GraphSpec, feeds: Mapping[str, torch.Tensor], outputs: Dict[str, torch.Tensor]) -> None:
        session = self.sessions[g.name]
        binding = session.io_binding()
        for t in g.inputs:
            x = feeds[t.name]
            binding.bind_input(t.name, self._device_type, self._device_id, ONNX_TYPE[x.dtype], list(x.shape),
                               x.data_ptr())
        for t in g.outputs:
            y = outputs[t.name]
            binding.bind_output(t.name, self._device_type, self._device_id, ONNX_TYPE[y.dtype], list(y.shape),
                                y.data_ptr())
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # inputs written by torch kernels
        session.run_with_iobinding(binding)
