"""The generation loop's executor on an export's graphs: each model piece is one graph call on a
backend, every tensor in the call's preallocated buffers (runtime.buffers), each call timed.

The executor owns every tensor it passes, so it calls the backend's `infer_owned` (shapes
checked once per distinct shape set) and spells the per-layer tensor names once, not per call."""
from typing import Dict, List, Optional

import torch

from nova_deploy.errors import InvalidArgument
from nova_deploy.export import vocabulary as io
from nova_deploy.export.spec import ExportSpec, GraphSpec, next_input_name
from nova_deploy.generation.executor import cfg_rows
from nova_deploy.models.var import ScaleOutput
from nova_deploy.nova.deciders import ScalePlan
from nova_deploy.runtime.backend import Backend
from nova_deploy.runtime.buffers import GenerationBuffers
from nova_deploy.runtime.timing import GraphClock


class GraphExecutor:
    def __init__(self, spec: ExportSpec, backend: Backend, bufs: GenerationBuffers, codebook_VC: torch.Tensor,
                 clock: GraphClock):
        self.spec, self.backend, self.bufs, self.clock = spec, backend, bufs, clock
        v = spec.var
        self.patch_nums, self.depth, self.embed_dim, self.z_channels = spec.patch_nums, v.depth, v.embed_dim, spec.vae.z_channels
        self.device = backend.device
        self.codebook_VC = codebook_VC
        P = self.patch_nums[-1]
        self._fhat_shape = (bufs.batch, self.z_channels, P, P)
        layers = range(self.depth)
        self._k_prefix, self._v_prefix = [io.k_prefix(i) for i in layers], [io.v_prefix(i) for i in layers]
        self._keep_idx = [io.keep_idx(i) for i in layers]
        self._attn_cache, self._ffn_cache = [io.attn_cache(i) for i in layers], [io.ffn_cache(i) for i in layers]
        self._k_new, self._v_new = [io.k_new(i) for i in layers], [io.v_new(i) for i in layers]
        self._attn_branch, self._ffn_branch = [io.attn_branch(i) for i in layers], [io.ffn_branch(i) for i in layers]
        self._scale_graphs = [spec.scale_graph(si) for si in range(len(self.patch_nums))]
        self._emits_branches = [g.emits_branches for g in self._scale_graphs]

    def _infer(self, graph: str, feeds, out) -> Dict[str, torch.Tensor]:
        started = self.clock.start()
        result = self.backend.infer_owned(graph, feeds, out)
        self.clock.stop(graph, started)
        return result

    def _tokens(self, si: int) -> torch.Tensor:
        return self.bufs.tokens.at(si, (self.bufs.rows, self.patch_nums[si] ** 2, self.embed_dim))

    def begin(self, label_B: torch.Tensor) -> torch.Tensor:
        bufs = self.bufs
        bufs.kv.reset()
        self._infer("cond", {io.LABELS: label_B}, {io.ADA: bufs.ada, io.HEAD_ADA: bufs.head_ada, io.X_FIRST: self._tokens(0)})
        bufs.f_hat.at(0, self._fhat_shape).zero_()
        return self._tokens(0)

    def run_scale(self, si: int, x_BlC: torch.Tensor, plan: Optional[ScalePlan]) -> ScaleOutput:
        g = self._scale_graphs[si]
        feeds, kept = self._scale_feeds(si, x_BlC, plan)
        out = self._infer(g.name, feeds, self._scale_outputs(g, kept))
        branches = self._emits_branches[si]  # only where the next scale is prunable: its caches
        return ScaleOutput(logits_BlV=out[io.LOGITS],
                           k_new=[out[n] for n in self._k_new], v_new=[out[n] for n in self._v_new],
                           attn_branch=[out[n] for n in self._attn_branch] if branches else None,
                           ffn_branch=[out[n] for n in self._ffn_branch] if branches else None)

    def append_kv(self, out: ScaleOutput) -> None:
        """One op for all layers when they kept as many tokens (their K/V sit in bufs.kv_new)."""
        count = out.k_new[0].shape[2]
        if all(k.shape[2] == count for k in out.k_new) and self.bufs.kv.append_all(self.bufs.kv_new, count):
            return
        for i in range(self.depth):
            self.bufs.kv.append(i, out.k_new[i], out.v_new[i])

    def next_input(self, si: int, h_BChw: torch.Tensor) -> Optional[torch.Tensor]:
        h = self.bufs.h.at(tuple(h_BChw.shape))  # the same address every call: its binding stays
        h.copy_(h_BChw)
        feeds = {io.F_HAT: self.bufs.f_hat.at(si, self._fhat_shape), io.H: h}
        out = {io.F_HAT_NEXT: self.bufs.f_hat.at(si + 1, self._fhat_shape)}
        if si == len(self.patch_nums) - 1:
            self._infer("final_fhat", feeds, out)
            return None
        out[io.X_NEXT] = self._tokens(si + 1)
        self._infer(next_input_name(si), feeds, out)
        return out[io.X_NEXT]

    def decode(self) -> torch.Tensor:
        K = len(self.patch_nums)
        self._infer("decoder", {io.F_HAT: self.bufs.f_hat.at(K, self._fhat_shape)}, {io.IMAGE: self.bufs.image})
        return self.bufs.image

    def _scale_feeds(self, si: int, x_BlC: torch.Tensor, plan: Optional[ScalePlan]):
        """Inputs of scale si's graph in the call's buffers, and the tokens each layer keeps."""
        bufs, N = self.bufs, self.depth
        R, l, C = x_BlC.shape
        feeds = {io.X: x_BlC, io.ADA: bufs.ada, io.HEAD_ADA: bufs.head_ada}
        if si > 0:
            for i in range(N):
                feeds[self._k_prefix[i]], feeds[self._v_prefix[i]] = bufs.kv.prefix(i)
        kept = [l] * N
        if not self.spec.prune.prunable(si):
            if plan is not None:
                raise InvalidArgument(f"the policy pruned scale {si}, which this export cannot prune "
                                      f"(prunable from scale {self.spec.prune.first_scale})")
            return feeds, kept
        l_prev = self.patch_nums[si - 1] ** 2
        for i in range(N):
            idx = None if plan is None else plan.idx_N[i]
            if idx is None:  # every layer that keeps all tokens reads the one all-positions tensor
                keep = bufs.all_positions(l)
            else:
                keep = cfg_rows(idx, out=bufs.keep_idx[i].at((R, idx.shape[1])))
            kept[i] = keep.shape[1]
            feeds[self._keep_idx[i]] = keep
            feeds[self._attn_cache[i]] = bufs.attn_branch[i].at(si - 1, (R, l_prev, C))
            feeds[self._ffn_cache[i]] = bufs.ffn_branch[i].at(si - 1, (R, l_prev, C))
        return feeds, kept

    def _scale_outputs(self, g: GraphSpec, kept: List[int]) -> Dict[str, torch.Tensor]:
        """Buffers scale g.si's graph writes: logits, new K/V of the kept tokens, the branches."""
        v, bufs = self.spec.var, self.bufs
        R, C, H = bufs.rows, v.embed_dim, v.num_heads
        l = self.patch_nums[g.si] ** 2
        out = {io.LOGITS: bufs.logits.at((R, l, self.spec.vae.vocab_size))}
        for i in range(v.depth):
            out[self._k_new[i]] = bufs.kv_new.at(0, i, (R, H, kept[i], C // H))
            out[self._v_new[i]] = bufs.kv_new.at(1, i, (R, H, kept[i], C // H))
        if self._emits_branches[g.si]:
            for i in range(v.depth):
                out[self._attn_branch[i]] = bufs.attn_branch[i].at(g.si, (R, l, C))
                out[self._ffn_branch[i]] = bufs.ffn_branch[i].at(g.si, (R, l, C))
        return out
