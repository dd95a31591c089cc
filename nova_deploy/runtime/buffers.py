"""Every tensor one generation touches, allocated once per batch size and reused.

Graph outputs are bound straight into these (ONNX Runtime IOBinding, TensorRT addresses):
logits, new K/V, the branch outputs that are the next scale's residual caches, f_hat and the next
scale's input tokens. Buffers are flat and viewed at each scale's shape, so one allocation serves
every scale. Ping-pong pairs let a scale read what the previous scale wrote while writing its own.

The K/V prefix a scale graph takes is a contiguous (2B, heads, prefix, head_dim) tensor. Appending
a scale's K/V to that layout moves every head's block, so there are two prefix buffers and each
scale writes cat(prefix, new) from one into the other: one copy of the prefix per scale, the same
traffic as the concatenation inside the graph, and no allocation. Both buffers, and the graph's
new K/V, hold K and V of every layer at a fixed stride, so that when every layer appends as many
tokens (a dense scale, or a plan that keeps as many per layer) one strided `cat` appends all of
them: per-op overhead, not bytes, is what the small models' orchestration spends its time on.

Views are kept once made: a generation asks for a few hundred views per image, and building a
view costs more than the small graphs' data it describes. A buffer only ever has as many
distinct shapes as its scales and kept counts, so the memo stays small.
"""
from typing import Dict, Optional, Tuple

import torch

from nova_deploy.export.spec import ExportSpec


class Flat:
    """One flat buffer; `at(shape)` views its first prod(shape) elements (memoised per shape).
    over: a 1-D tensor to view instead of a new allocation (a region of a larger buffer)."""

    def __init__(self, numel: int, dtype: torch.dtype, device: torch.device, over: Optional[torch.Tensor] = None):
        self.flat = torch.empty(numel, dtype=dtype, device=device) if over is None else over
        self._views: Dict[Tuple[int, ...], torch.Tensor] = {}

    def at(self, shape: Tuple[int, ...]) -> torch.Tensor:
        v = self._views.get(shape)
        if v is None:
            n = 1
            for s in shape:
                n *= s
            v = self._views[shape] = self.flat[:n].view(shape)
        return v


class PingPong:
    """Two flat buffers; `at(i, shape)` views buffer i % 2: step i reads at(i) and writes at(i + 1)."""

    def __init__(self, numel: int, dtype: torch.dtype, device: torch.device):
        self.flats = (Flat(numel, dtype, device), Flat(numel, dtype, device))

    def at(self, i: int, shape: Tuple[int, ...]) -> torch.Tensor:
        return self.flats[i % 2].at(shape)


class LayerRegions:
    """One flat buffer in 2 x depth equal regions, K then V of each layer: region (kv, layer) is
    viewed contiguous at any shape that fits, and `all_at` views the same extent of every region
    at once (strided), for one op over all layers."""

    def __init__(self, depth: int, region_numel: int, dtype, device):
        self.depth, self.region = depth, region_numel
        self.flat = torch.empty(2 * depth * region_numel, dtype=dtype, device=device)
        self._regions = [Flat(region_numel, dtype, device, over=self.flat[r * region_numel:(r + 1) * region_numel])
                         for r in range(2 * depth)]
        self._views: Dict[Tuple[int, ...], torch.Tensor] = {}

    def at(self, kv: int, layer: int, shape: Tuple[int, ...]) -> torch.Tensor:
        return self._regions[kv * self.depth + layer].at(shape)

    def all_at(self, shape: Tuple[int, ...]) -> torch.Tensor:
        """(2 * depth, *shape): every region's first prod(shape) elements at that shape."""
        v = self._views.get(shape)
        if v is None:
            inner = torch.empty(shape, device="meta").stride()
            v = self._views[shape] = self.flat.as_strided((2 * self.depth, *shape), (self.region, *inner))
        return v


class KVPrefixes:
    """Per layer the K and V of every scale so far, contiguous (2B, H, length, c)."""

    def __init__(self, depth: int, rows: int, heads: int, max_len: int, head_dim: int, dtype, device):
        self.rows, self.heads, self.head_dim = rows, heads, head_dim
        numel = rows * heads * max_len * head_dim
        self.turns = (LayerRegions(depth, numel, dtype, device), LayerRegions(depth, numel, dtype, device))
        self.lengths = [0] * depth
        self._turn = [0] * depth

    def reset(self) -> None:
        self.lengths = [0] * len(self.lengths)
        self._turn = [0] * len(self._turn)

    def _shape(self, n: int) -> Tuple[int, int, int, int]:
        return (self.rows, self.heads, n, self.head_dim)

    def prefix(self, layer: int) -> Tuple[torch.Tensor, torch.Tensor]:
        regions, shape = self.turns[self._turn[layer] % 2], self._shape(self.lengths[layer])
        return regions.at(0, layer, shape), regions.at(1, layer, shape)

    def append(self, layer: int, k_new: torch.Tensor, v_new: torch.Tensor) -> None:
        t, n = self._turn[layer], self.lengths[layer]
        total = n + k_new.shape[2]
        src, dst = self.turns[t % 2], self.turns[(t + 1) % 2]
        for kv, new in ((0, k_new), (1, v_new)):
            torch.cat((src.at(kv, layer, self._shape(n)), new), dim=2, out=dst.at(kv, layer, self._shape(total)))
        self._turn[layer] = t + 1
        self.lengths[layer] = total

    def append_all(self, new: LayerRegions, count: int) -> bool:
        """Appends the first `count` tokens of every layer's region in `new` with one op, when every
        layer has the same prefix length and turn; False (nothing done) otherwise."""
        n, t = self.lengths[0], self._turn[0]
        if self.lengths.count(n) != len(self.lengths) or self._turn.count(t) != len(self._turn):
            return False
        total = n + count
        torch.cat((self.turns[t % 2].all_at(self._shape(n)), new.all_at(self._shape(count))), dim=3,
                  out=self.turns[(t + 1) % 2].all_at(self._shape(total)))
        self._turn = [t + 1] * len(self._turn)
        self.lengths = [total] * len(self.lengths)
        return True


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
        self.kv_new = LayerRegions(N, R * H * l_max * (C // H), act, device)  # a scale's new K/V per layer
        self.attn_branch = [PingPong(R * l_max * C, act, device) for _ in range(N)]
        self.ffn_branch = [PingPong(R * l_max * C, act, device) for _ in range(N)]
        self.keep_idx = [Flat(R * l_max, torch.int64, device) for _ in range(N)]
        self.logits = Flat(R * l_max * V, torch.float32, device)
        self.tokens = PingPong(R * l_max * C, act, device)  # scale si's input tokens: tokens.at(si)
        self.f_hat = PingPong(batch * Cv * P * P, torch.float32, device)  # f_hat before scale si: f_hat.at(si)
        self.h = Flat(batch * Cv * P * P, torch.float32, device)  # a scale's token embeddings, B Cvae pn pn
        self.ada = torch.empty((N, R, 6, C), dtype=act, device=device)
        self.head_ada = torch.empty((R, 2, C), dtype=act, device=device)
        self.image = torch.empty((batch, 3, spec.vae.image_size, spec.vae.image_size), dtype=torch.float32,
                                 device=device)
        self._all_positions = torch.arange(l_max, device=device).expand(R, l_max).contiguous()
        self._all_positions_views: Dict[int, torch.Tensor] = {}

    def all_positions(self, l: int) -> torch.Tensor:
        """(2B, l) int64 0..l-1 in every row: the kept positions of a layer that prunes nothing
        (filled once; read-only, so every such layer is fed this same tensor)."""
        v = self._all_positions_views.get(l)
        if v is None:
            v = self._all_positions_views[l] = self._all_positions[:, :l].contiguous()
        return v
