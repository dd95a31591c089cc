"""The runtime orchestrator: per-scale graphs on a backend, NOVA's decisions between them.

    pipe = Pipeline.from_dir("engines/nova-ref", backend="onnxruntime")
    result = pipe.generate([3, 7], seed=0, cfg=1.5, policy="nova", want_trace=True)
    result.images  # B 3 H W in [0, 1]

Per scale: feeds from preallocated buffers -> scale graph (outputs bound into the buffers) ->
K/V appended -> CFG -> policy observes entropy and branch statistics -> sampling -> token
embedding -> next_input graph (f_hat update, next scale's tokens); then the decoder. Sampling
draws from a torch generator in the reference sampler's order, so with fp32 graphs the runtime
produces the tokens of `nova_deploy.sampler.generate` for the same seed, labels and policy.

Threads: one Pipeline may be called from several threads at once. Backends are shared (ONNX
Runtime sessions and torch modules run concurrently; TensorRT contexts are locked per backend);
each call takes its own buffer set from a pool keyed by batch size, so concurrent calls never
share a buffer, and memory grows by one buffer set per concurrent call.
"""
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import torch

from nova_deploy.errors import InvalidArgument, require
from nova_deploy.nova.policy import Policy, parse_policy
from nova_deploy.runtime.backend import Backend
from nova_deploy.runtime.backends import open_backend
from nova_deploy.runtime.buffers import GenerationBuffers, view
from nova_deploy.runtime.export_dir import ExportDir
from nova_deploy.runtime.policy_fit import check_policy_fits
from nova_deploy.sampler import build_trace, resolve_labels
from nova_deploy.sampling import (SamplingParams, combine_cfg, guidance_at, gumbel_softmax_with_rng, random_streams,
                                  sample_with_top_k_top_p_, smooth_temperature)


@dataclass
class Timing:
    total_s: float = 0.0
    backend_s: float = 0.0  # inside backend.infer (graph execution and binding)
    per_graph_s: Dict[str, float] = field(default_factory=dict)

    @property
    def outside_backend_s(self) -> float:
        return self.total_s - self.backend_s

    def to_json(self) -> dict:
        return {"total_s": self.total_s, "backend_s": self.backend_s, "outside_backend_s": self.outside_backend_s,
                "per_graph_s": dict(self.per_graph_s)}


@dataclass
class RuntimeResult:
    images: torch.Tensor  # B 3 H W in [0, 1], float32, on the pipeline's device
    tokens: List[torch.Tensor]  # sampled ids per scale, B x pn*pn
    trace: Optional[List[dict]] = None
    timing: Timing = field(default_factory=Timing)


class BufferPool:
    """Buffer sets by batch size; a call checks one out and returns it, so concurrent calls never share."""

    def __init__(self, spec, device):
        self.spec, self.device = spec, device
        self._free: Dict[int, List[GenerationBuffers]] = {}
        self._lock = threading.Lock()

    def take(self, batch: int) -> GenerationBuffers:
        with self._lock:
            free = self._free.get(batch)
            if free:
                return free.pop()
        return GenerationBuffers(self.spec, batch, self.device)

    def give(self, bufs: GenerationBuffers) -> None:
        with self._lock:
            self._free.setdefault(bufs.batch, []).append(bufs)


class Pipeline:
    def __init__(self, export: ExportDir, backend: Backend):
        self.export, self.backend, self.spec = export, backend, export.spec
        self.device = backend.device
        self.codebook_VC = export.codebook_VC.to(self.device)
        self.buffers = BufferPool(self.spec, self.device)

    @classmethod
    def from_dir(cls, path, backend: str = "onnxruntime", device: Union[str, torch.device] = "cpu",
                 threads: Optional[int] = None, verify_hashes: bool = True) -> "Pipeline":
        export = ExportDir.open(path, verify_hashes=verify_hashes)
        return cls(export, open_backend(backend, export, device=device, threads=threads))

    def close(self) -> None:
        self.backend.deactivate()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def max_batch(self) -> int:
        return self.spec.max_batch

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, labels: Union[Sequence[int], torch.Tensor], seed: Optional[int] = None, cfg: float = 1.5,
                 top_k: int = 0, top_p: float = 0.0, more_smooth: bool = False,
                 policy: Union[str, Policy] = "none", want_trace: bool = False,
                 seeds: Optional[Sequence[int]] = None) -> RuntimeResult:
        """seed: one random stream for the batch, in the official order (the official code's images).
        seeds: one int64 seed per image, each image drawing from its own stream, so that an image does
        not depend on the rest of its batch (up to NOVA's batch rule: kept counts are the batch's maximum)."""
        params = SamplingParams(cfg=cfg, top_k=top_k, top_p=top_p, more_smooth=more_smooth)
        policy = parse_policy(policy) if isinstance(policy, str) else policy
        check_policy_fits(policy, self.spec)
        B = len(labels)
        require(1 <= B <= self.max_batch, f"batch of {B} images: this export takes 1..{self.max_batch} "
                                          f"(re-export with --max-batch {B} for more)")
        rng = random_streams(seed, seeds, B, self.device)
        label_B = resolve_labels(self.spec.var.num_classes, B, labels, rng, self.device)
        bufs = self.buffers.take(B)
        try:
            return self._generate(bufs, label_B, rng, params, policy, want_trace)
        finally:
            self.buffers.give(bufs)

    def _infer(self, timing: Timing, graph: str, feeds, out):
        t0 = time.perf_counter()
        result = self.backend.infer(graph, feeds, out)
        dt = time.perf_counter() - t0
        timing.backend_s += dt
        timing.per_graph_s[graph] = timing.per_graph_s.get(graph, 0.0) + dt
        return result

    def _generate(self, bufs: GenerationBuffers, label_B, rng, params: SamplingParams, policy: Policy,
                  want_trace: bool) -> RuntimeResult:
        t_start = time.perf_counter()
        timing = Timing()
        spec = self.spec
        v = spec.var
        N, C, K, Cv = v.depth, v.embed_dim, spec.num_scales, spec.vae.z_channels
        patch_nums, B, R = spec.patch_nums, bufs.batch, bufs.rows
        P = patch_nums[-1]
        bufs.kv.reset()
        decider = policy.begin(B, patch_nums, N, self.device)
        observe = policy.name != "none" or want_trace

        first_l = patch_nums[0] ** 2
        self._infer(timing, "cond", {"label_B": label_B},
                    {"ada_NB6C": bufs.ada, "head_ada_B2C": bufs.head_ada,
                     "x_first_BlC": bufs.tokens.at(0, (R, first_l, C))})
        bufs.f_hat.at(0, (B, Cv, P, P)).zero_()
        tokens: List[torch.Tensor] = []
        for si, pn in enumerate(patch_nums):
            g = spec.scale_graph(si)
            x_BlC = bufs.tokens.at(si, (R, pn * pn, C))
            feeds, kept = self._scale_feeds(bufs, si, x_BlC, decider.plan(si, x_BlC), policy)
            out = self._scale_outputs(bufs, g, kept)
            self._infer(timing, g.name, feeds, out)
            for i in range(N):
                bufs.kv.append(i, out[f"k_new_{i}"], out[f"v_new_{i}"])

            logits_BlV = combine_cfg(out["logits_BlV"], guidance_at(si, K, params.cfg))
            if observe:  # entropy of the guided distribution before top-k/top-p filter it in place
                attn = [out[f"attn_branch_{i}"] for i in range(N)] if g.emits_branches else None
                ffn = [out[f"ffn_branch_{i}"] for i in range(N)] if g.emits_branches else None
                decider.observe(si, logits_BlV, attn, ffn)
            idx_Bl = sample_with_top_k_top_p_(logits_BlV, rng=rng, top_k=params.top_k, top_p=params.top_p)[:, :, 0]
            tokens.append(idx_Bl)
            h_BChw = self._embed(si, idx_Bl, logits_BlV, params, rng).transpose(1, 2).reshape(B, Cv, pn, pn).contiguous()
            f_hat = bufs.f_hat.at(si, (B, Cv, P, P))
            f_next = bufs.f_hat.at(si + 1, (B, Cv, P, P))
            if si < K - 1:
                l_next = patch_nums[si + 1] ** 2
                self._infer(timing, f"next_input_{si:02d}", {"f_hat_BChw": f_hat, "h_BChw": h_BChw},
                            {"f_hat_next_BChw": f_next, "x_next_BlC": bufs.tokens.at(si + 1, (R, l_next, C))})
            else:
                self._infer(timing, "final_fhat", {"f_hat_BChw": f_hat, "h_BChw": h_BChw},
                            {"f_hat_next_BChw": f_next})
        self._infer(timing, "decoder", {"f_hat_BChw": bufs.f_hat.at(K, (B, Cv, P, P))}, {"img_B3HW": bufs.image})
        images = bufs.image.add(1).mul_(0.5)  # a new tensor: the buffer goes back to the pool
        trace = build_trace(decider.trace(), policy, patch_nums, N, C) if want_trace else None
        timing.total_s = time.perf_counter() - t_start
        return RuntimeResult(images=images, tokens=tokens, trace=trace, timing=timing)

    def _scale_feeds(self, bufs: GenerationBuffers, si: int, x_BlC: torch.Tensor, plan, policy: Policy):
        """Inputs of scale si's graph in the call's buffers, and the tokens each layer keeps."""
        spec, N = self.spec, self.spec.var.depth
        R, l, C = x_BlC.shape
        feeds = {"x_BlC": x_BlC, "ada_NB6C": bufs.ada, "head_ada_B2C": bufs.head_ada}
        if si > 0:
            for i in range(N):
                feeds[f"k_prefix_{i}"], feeds[f"v_prefix_{i}"] = bufs.kv.prefix(i)
        kept = [l] * N
        if not spec.prune.prunable(si):
            if plan is not None:
                raise InvalidArgument(f"policy {policy.name} pruned scale {si}, which this export cannot prune "
                                      f"(prunable from scale {spec.prune.first_scale})")
            return feeds, kept
        B, l_prev = bufs.batch, spec.patch_nums[si - 1] ** 2
        for i in range(N):
            idx = None if plan is None else plan.idx_N[i]
            kept[i] = l if idx is None else idx.shape[1]
            keep = view(bufs.keep_idx[i], (R, kept[i]))
            if idx is None:
                keep.copy_(bufs.positions[:l].expand(R, l))
            else:  # CFG rows reuse their sample's kept positions
                keep[:B].copy_(idx)
                keep[B:].copy_(idx)
            feeds[f"keep_idx_{i}"] = keep
            feeds[f"attn_cache_{i}"] = bufs.attn_branch[i].at(si - 1, (R, l_prev, C))
            feeds[f"ffn_cache_{i}"] = bufs.ffn_branch[i].at(si - 1, (R, l_prev, C))
        return feeds, kept

    def _scale_outputs(self, bufs: GenerationBuffers, g, kept: List[int]) -> Dict[str, torch.Tensor]:
        """Buffers scale g.si's graph writes: logits, new K/V of the kept tokens, the branches."""
        v = self.spec.var
        R, C, H = bufs.rows, v.embed_dim, v.num_heads
        l = self.spec.patch_nums[g.si] ** 2
        out = {"logits_BlV": view(bufs.logits, (R, l, self.spec.vae.vocab_size))}
        for i in range(v.depth):
            out[f"k_new_{i}"] = view(bufs.k_new[i], (R, H, kept[i], C // H))
            out[f"v_new_{i}"] = view(bufs.v_new[i], (R, H, kept[i], C // H))
        if g.emits_branches:  # the next scale is prunable: its caches
            for i in range(v.depth):
                out[f"attn_branch_{i}"] = bufs.attn_branch[i].at(g.si, (R, l, C))
                out[f"ffn_branch_{i}"] = bufs.ffn_branch[i].at(g.si, (R, l, C))
        return out

    def _embed(self, si: int, idx_Bl: torch.Tensor, logits_BlV: torch.Tensor, params: SamplingParams, rng):
        """The sampled tokens' codebook vectors (B, l, Cv); with more_smooth, the Gumbel-softmax mix."""
        if not params.more_smooth:
            return self.codebook_VC[idx_Bl]
        K = self.spec.num_scales
        soft = gumbel_softmax_with_rng(logits_BlV.mul(1 + si / (K - 1)), tau=smooth_temperature(si, K), rng=rng)
        return soft @ self.codebook_VC.unsqueeze(0)
