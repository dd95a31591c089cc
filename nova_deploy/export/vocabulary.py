"""The graphs' I/O vocabulary: every tensor name and every element type, written once.

The spec declares graphs with these names; the graph modules, the runtime's executor, validation
and the backends look tensors up by them. Per-layer tensors are named `<stem>_<layer>`.
Names keep VAR's convention: the suffix spells the shape (B batch rows, l tokens of one scale,
C width, V vocabulary, N layers, H heads, k kept tokens, hw the token grid).
"""
from dataclasses import dataclass
from typing import Dict

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


def k_prefix(layer: int) -> str:
    return f"k_prefix_{layer}"


def v_prefix(layer: int) -> str:
    return f"v_prefix_{layer}"


def keep_idx(layer: int) -> str:
    return f"keep_idx_{layer}"


def attn_cache(layer: int) -> str:
    return f"attn_cache_{layer}"


def ffn_cache(layer: int) -> str:
    return f"ffn_cache_{layer}"


def k_new(layer: int) -> str:
    return f"k_new_{layer}"


def v_new(layer: int) -> str:
    return f"v_new_{layer}"


def attn_branch(layer: int) -> str:
    return f"attn_branch_{layer}"


def ffn_branch(layer: int) -> str:
    return f"ffn_branch_{layer}"


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
