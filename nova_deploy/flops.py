"""Analytic transformer FLOPs of VAR (multiply-add = 2 FLOPs), per layer and scale.

Counted: QKV, attention scores and weighted sum, output projection, FFN. Not counted (the same
with or without pruning, and small): LayerNorm, AdaLN modulation, gather/scatter, the head.
"""
from typing import Sequence


def layer_flops(rows: int, kept: int, prefix: int, C: int, mlp_ratio: float = 4.0) -> int:
    """One block at one scale: `rows` batch rows (2B with CFG), `kept` tokens computed,
    attending to `prefix` cached tokens plus themselves."""
    hidden = round(C * mlp_ratio)
    per_row = (2 * kept * C * 3 * C            # qkv
               + 2 * 2 * kept * (prefix + kept) * C  # q k^T and attn v
               + 2 * kept * C * C              # proj
               + 2 * 2 * kept * C * hidden)    # fc1, fc2
    return rows * per_row


def transformer_flops(kept_SN: Sequence[Sequence[int]], rows: int, C: int, mlp_ratio: float = 4.0) -> int:
    """All blocks over all scales given kept[s][l]; each layer's prefix grows by what it kept."""
    depth = len(kept_SN[0])
    prefix = [0] * depth
    total = 0
    for kept_N in kept_SN:
        for layer, k in enumerate(kept_N):
            total += layer_flops(rows, k, prefix[layer], C, mlp_ratio)
            prefix[layer] += k
    return total


def dense_kept(patch_nums: Sequence[int], depth: int):
    return [[pn * pn] * depth for pn in patch_nums]
