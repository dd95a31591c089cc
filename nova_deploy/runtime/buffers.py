"""Every tensor one generation touches, allocated once per batch size and reused.

Graph outputs are bound straight into these (ONNX Runtime IOBinding, TensorRT addresses):
logits, new K/V, the branch outputs that are the next scale's residual caches, f_hat and the next
scale's input tokens. Buffers are flat and viewed at each scale's shape, so one allocation serves
every scale. Ping-pong pairs let a scale read what the previous scale wrote while writing its own.

The K/V prefix a scale graph takes is a contiguous (2B, heads, prefix, head_dim) tensor. Appending
a scale's K/V to that layout moves every head's block, so each layer keeps two prefix buffers and
each scale writes cat(prefix, new) from one into the other: one copy of the prefix per scale,
the same traffic as the concatenation inside the graph, and no allocation.
"""
from typing import Tuple

import torch

from nova_deploy.export.spec import ExportSpec


def _view(flat: torch.Tensor, shape: Tuple[int, ...]) -> torch.Tensor:
    n = 1
    for s in shape:
        n *= s
    return flat[:n].view(shape)


class PingPong:
    """Two flat buffers; `at(i, shape)` views buffer i % 2: step i reads at(i) and writes at(i + 1)."""

    def __init__(self, numel: int, dtype: torch.dtype, device: torch.device):
        self.flats = (torch.empty(numel, dtype=dtype, device=device), torch.empty(numel, dtype=dtype, device=device))

    def at(self, i: int, shape) -> torch.Tensor:
        return _view(self.flats[i % 2], tuple(shape))


class KVPrefixes:
    """Per layer the K and V of every scale so far, contiguous (2B, H, length, c)."""

    def __init__(self, depth: int, rows: int, heads: int, max_len: int, head_dim: int, dtype, device):
        self.rows, self.heads, self.head_dim = rows, heads, head_dim
        numel = rows * heads * max_len * head_dim
        self.k = [PingPong(numel, dtype, device) for _ in range(depth)]
        self.v = [PingPong(numel, dtype, device) for _ in range(depth)]
        self.lengths = [0] * depth
        self._turn = [0] * depth

    def reset(self) -> None:
        self.lengths = [0] * len(self.lengths)
        self._turn = [0] * len(self._turn)

    def _shape(self, n: int) -> Tuple[int, int, int, int]:
        return (self.rows, self.heads, n, self.head_dim)

    def prefix(self, layer: int) -> Tuple[torch.Tensor, torch.Tensor]:
        t, n = self._turn[layer], self.lengths[layer]
        return self.k[layer].at(t, self._shape(n)), self.v[layer].at(t, self._shape(n))

    def append(self, layer: int, k_new: torch.Tensor, v_new: torch.Tensor) -> None:
        t, n = self._turn[layer], self.lengths[layer]
        total = n + k_new.shape[2]
        for pp, new in ((self.k[layer], k_new), (self.v[layer], v_new)):
            torch.cat((pp.at(t, self._shape(n)), new), dim=2, out=pp.at(t + 1, self._shape(total)))
        self._turn[layer] = t + 1
        self.lengths[layer] = total


class GenerationBuffers:
    """What one generate() call of `batch` images writes; owned by one call at a time."""

    def __init__(self, spec: ExportSpec, batch: int, device: torch.device):
        v = spec.var
        self.batch, self.rows = batch, 2 * batch
        act = spec.activation_element.torch
        N, C, H = v.depth, v.embed_dim, v.num_heads
        l_max = max(pn * pn for pn in spec.patch_nums)
        L = sum(pn * pn for pn in spec.patch_nums)
        P, Cv, V = spec.patch_nums[-1], spec.vae.z_channels, spec.vae.vocab_size
        R = self.rows
        self.kv = KVPrefixes(N, R, H, L, C // H, act, device)
        self.k_new = [torch.empty(R * H * l_max * (C // H), dtype=act, device=device) for _ in range(N)]
        self.v_new = [torch.empty(R * H * l_max * (C // H), dtype=act, device=device) for _ in range(N)]
        self.attn_branch = [PingPong(R * l_max * C, act, device) for _ in range(N)]
        self.ffn_branch = [PingPong(R * l_max * C, act, device) for _ in range(N)]
        self.keep_idx = [torch.empty(R * l_max, dtype=torch.int64, device=device) for _ in range(N)]
        self.logits = torch.empty(R * l_max * V, dtype=torch.float32, device=device)
        self.tokens = PingPong(R * l_max * C, act, device)  # scale si's input tokens: tokens.at(si)
        self.f_hat = PingPong(batch * Cv * P * P, torch.float32, device)  # f_hat before scale si: f_hat.at(si)
        self.ada = torch.empty((N, R, 6, C), dtype=act, device=device)
        self.head_ada = torch.empty((R, 2, C), dtype=act, device=device)
        self.image = torch.empty((batch, 3, spec.vae.image_size, spec.vae.image_size), dtype=torch.float32,
                                 device=device)
        self.positions = torch.arange(l_max, device=device)


def view(flat: torch.Tensor, shape) -> torch.Tensor:
    return _view(flat, tuple(shape))
