"""The graphs' I/O vocabulary: every tensor name and every element type, written once.

The spec declares graphs with these names; the graph modules, the runtime's executor, validation
and the backends look tensors up by them. Per-layer tensors are named `<stem>_<layer>`.
Names keep VAR's convention: the suffix spells the shape (B batch rows, l tokens of one scale,
C width, V vocabulary, N layers, H heads, k kept tokens, hw the token grid).
"""
from dataclasses import dataclass
from typing import Callable, Dict

import torch

# cond
LABELS = "label_B"
ADA = "ada_NB6C"
HEAD_ADA = "head_ada_B2C"
X_FIRST = "x_first_BlC"
# scale_XX
X = "x_BlC"
LOGITS = "logits_BlV"
# next_input_XX, final_fhat, decoder
F_HAT = "f_hat_BChw"
H = "h_BChw"
F_HAT_NEXT = "f_hat_next_BChw"
X_NEXT = "x_next_BlC"
IMAGE = "img_B3HW"


def _per_layer(stem: str) -> Callable[[int], str]:
    def name(layer: int) -> str:
        return f"{stem}_{layer}"
    name.__name__ = stem
    return name


# scale_XX, per layer: inputs
k_prefix, v_prefix = _per_layer("k_prefix"), _per_layer("v_prefix")
keep_idx = _per_layer("keep_idx")
attn_cache, ffn_cache = _per_layer("attn_cache"), _per_layer("ffn_cache")
# scale_XX, per layer: outputs
k_new, v_new = _per_layer("k_new"), _per_layer("v_new")
attn_branch, ffn_branch = _per_layer("attn_branch"), _per_layer("ffn_branch")


@dataclass(frozen=True)
class ElementType:
    name: str  # the ONNX element type's name, as the manifest writes it
    torch: torch.dtype
    onnx: int  # onnx.TensorProto.DataType value, fixed by the ONNX standard (tests compare with onnx's)


ELEMENT_TYPES: Dict[str, ElementType] = {e.name: e for e in (
    ElementType("float32", torch.float32, 1),
    ElementType("float16", torch.float16, 10),
    ElementType("bfloat16", torch.bfloat16, 16),
    ElementType("int64", torch.int64, 7),
)}
ELEMENT_TYPE_OF_TORCH: Dict[torch.dtype, ElementType] = {e.torch: e for e in ELEMENT_TYPES.values()}

# The transformer's activations and weights at each export precision; the VQVAE graphs (f_hat
# update, decoder) and the logits stay float32 at every precision.
PRECISION_ELEMENT_TYPE: Dict[str, ElementType] = {
    "fp32": ELEMENT_TYPES["float32"], "fp16": ELEMENT_TYPES["float16"], "bf16": ELEMENT_TYPES["bfloat16"]}
PRECISIONS = tuple(PRECISION_ELEMENT_TYPE)
