"""Run a bfloat16 graph on ONNX Runtime's CPU EP, which has almost no bfloat16 kernels.

The emulated copy computes every bfloat16 op in float32 and rounds its result to bfloat16
(Cast to bfloat16 and back), so every tensor that is bfloat16 in the graph holds exactly a
bfloat16 value. That is what a GPU executing the graph does (bf16 storage, fp32 accumulation),
up to the accumulation order inside each op. Data-movement ops (reshape, gather, ...) are exact
and get no rounding. The original graph is not modified; the copy is validation-only.

The emulated graphs' weights are one fp32 file (`Fp32Weights`) written once for all of them, which
ONNX Runtime sessions then share like the export's own weights.bin: converting each graph with its
weights loaded gave every session its own fp32 copy (d16: ten scale graphs x 1.2 GB).
"""
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nova_deploy.export.shared_weights import external_place, map_weights_file

BF16, FP32 = TensorProto.BFLOAT16, TensorProto.FLOAT
EXACT_OPS = {"Reshape", "Transpose", "Slice", "Squeeze", "Unsqueeze", "Concat", "Expand", "Gather", "GatherElements",
             "ScatterElements", "Identity", "Split", "Flatten", "Tile", "Shape", "Size"}


def _retype(vi: onnx.ValueInfoProto) -> None:
    tt = vi.type.tensor_type
    if tt.elem_type == BF16:
        tt.elem_type = FP32


def _to_fp32(t: onnx.TensorProto) -> onnx.TensorProto:
    arr = numpy_helper.to_array(t).astype(np.float32)  # bf16 -> fp32 is exact
    return numpy_helper.from_array(arr, t.name)


class Fp32Weights:
    """The weights file of emulated graphs: each external tensor of the export's weights file
    stored once, bf16 widened to fp32 (exact), everything else copied as it is."""

    def __init__(self, source: Path, out_path: Path):
        self.source = map_weights_file(source)
        self.path = Path(out_path)
        self._file = open(self.path, "wb")
        self._placed: Dict[Tuple[int, int, int], Tuple[int, int]] = {}  # (offset, length, type) -> new place

    def relocate(self, init: onnx.TensorProto) -> None:
        """Point an external initializer of the export at its fp32 copy in this file."""
        _, offset, length = external_place(init)
        key = (offset, length, init.data_type)
        if key not in self._placed:
            raw = self.source[offset:offset + length]
            if init.data_type == BF16:  # bf16 is the high half of an fp32
                data = (raw.view(np.uint16).astype(np.uint32) << 16).tobytes()
            else:
                data = raw.tobytes()
            pos = self._file.tell()
            pad = (-pos) % 64
            self._file.write(b"\0" * pad + data)
            self._placed[key] = (pos + pad, len(data))
        pos, n = self._placed[key]
        if init.data_type == BF16:
            init.data_type = FP32
        location = self.path.name
        del init.external_data[:]
        for k, v in (("location", location), ("offset", str(pos)), ("length", str(n))):
            init.external_data.add(key=k, value=v)

    def close(self) -> None:
        self._file.close()


def emulate_bf16(model: onnx.ModelProto,
                 external: Optional[Callable[[onnx.TensorProto], None]] = None) -> onnx.ModelProto:
    """A float32 copy of model with bfloat16 rounding after every bf16 op. Initializers held in
    the model are converted here; those in an external file are handed to `external` (e.g.
    Fp32Weights.relocate), which must make them float32 data."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    types: Dict[str, int] = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    for i, init in enumerate(g.initializer):
        if init.data_location == TensorProto.EXTERNAL:
            if external is None:
                raise ValueError(f"initializer {init.name} is external: load its data or pass `external`")
            external(init)
        elif init.data_type == BF16:
            g.initializer[i].CopyFrom(_to_fp32(init))
    nodes = []
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == BF16:
                a.t.CopyFrom(_to_fp32(a.t))
        bf16_outs = [o for o in n.output if o and types.get(o) == BF16]
        if not bf16_outs or n.op_type in EXACT_OPS:
            nodes.append(n)
            continue
        renamed = {o: f"{o}__raw" for o in bf16_outs}
        n.output[:] = [renamed.get(o, o) for o in n.output]
        if n.op_type == "Cast":  # Cast(to=bf16) rounds by itself; cast its result back up
            nodes.append(n)
            nodes.append(helper.make_node("Cast", [renamed[bf16_outs[0]]], [bf16_outs[0]], to=FP32))
            continue
        nodes.append(n)
        for o in bf16_outs:
            nodes.append(helper.make_node("Cast", [renamed[o]], [f"{o}__bf16"], to=BF16))
            nodes.append(helper.make_node("Cast", [f"{o}__bf16"], [o], to=FP32))
    del g.node[:]
    g.node.extend(nodes)
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        _retype(vi)
    # intermediate types changed; let ORT infer them again
    del g.value_info[:]
    return m


def round_to_bf16(arr: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), kept as float32."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).to(torch.bfloat16).float().numpy()
