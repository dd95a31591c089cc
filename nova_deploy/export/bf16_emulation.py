"""Run a bfloat16 graph on ONNX Runtime's CPU EP, which has almost no bfloat16 kernels.

The emulated copy computes every bfloat16 op in float32 and rounds its result to bfloat16
(Cast to bfloat16 and back), so every tensor that is bfloat16 in the graph holds exactly a
bfloat16 value. That is what a GPU executing the graph does (bf16 storage, fp32 accumulation),
up to the accumulation order inside each op. Data-movement ops (reshape, gather, ...) are exact
and get no rounding. The original graph is not modified; the copy is validation-only.
"""
from typing import Dict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

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


def emulate_bf16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float32 copy of model (external data loaded) with bfloat16 rounding after every bf16 op."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    types: Dict[str, int] = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    for i, init in enumerate(g.initializer):
        if init.data_type == BF16:
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
