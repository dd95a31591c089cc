"""VAR's scale loop, written once: the PyTorch sampler, the runtime over graphs and the export's
validation all run it, each with its own executor (generation.executor).

    for each scale si:
        plan      the policy's decider picks the tokens each layer computes (None: dense)
        execute   the executor runs the scale with the plan, its K/V prefix and residual caches
        append    the scale's K/V join the prefix
        CFG       guided logits of the B samples from the 2B rows
        observe   the decider sees the guided distribution's entropy and the branch outputs
        sample    top-k / top-p sampling, drawing from the generator in the official order
        embed     codebook vectors of the tokens (with more_smooth, the Gumbel-softmax mix)
        update    f_hat += Phi(upsampled h); the next scale's input tokens
    decode f_hat into images

With no pruning it computes exactly what the official `autoregressive_infer_cfg` computes.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch

from nova_deploy.flops import dense_kept, transformer_flops
from nova_deploy.generation.executor import ScaleExecutor
from nova_deploy.nova.deciders import Decider
from nova_deploy.nova.policy import Policy
from nova_deploy.sampling import (SamplingParams, combine_cfg_, guidance_at, gumbel_softmax_with_rng,
                                  sample_with_top_k_top_p_, smooth_temperature)


@dataclass
class Generation:
    images: torch.Tensor  # B 3 H W in [0, 1]
    tokens: List[torch.Tensor]  # sampled ids per scale, B x pn*pn
    trace: Optional[List[dict]] = None


def run_scales(ex: ScaleExecutor, label_B: torch.Tensor, rng: Optional[torch.Generator], params: SamplingParams,
               decider: Decider, observe: bool, forced_idx: Sequence[torch.Tensor] = (),
               on_scale: Optional[Callable[[int], None]] = None) -> Generation:
    """The loop. forced_idx: token ids of the first len(forced_idx) scales, taken instead of the
    sampled ones (the generator is drawn from as without them); observe: feed the decider the
    entropy and branches (a dense run without a trace needs neither)."""
    B, K, Cv = label_B.shape[0], len(ex.patch_nums), ex.z_channels
    x_BlC = ex.begin(label_B)
    tokens: List[torch.Tensor] = []
    for si, pn in enumerate(ex.patch_nums):
        out = ex.run_scale(si, x_BlC, decider.plan(si, x_BlC))
        ex.append_kv(out)
        logits_BlV = combine_cfg_(out.logits_BlV, guidance_at(si, K, params.cfg))  # in place
        if observe:  # entropy of the guided distribution before top-k/top-p filter it in place
            decider.observe(si, logits_BlV, out.attn_branch, out.ffn_branch)
        del out  # the K/V copies and branches are dead now (the logits live on in logits_BlV until embedded)
        idx_Bl = sample_with_top_k_top_p_(logits_BlV, rng=rng, top_k=params.top_k, top_p=params.top_p,
                                          draw=params.draw)[:, :, 0]
        forced = si < len(forced_idx)
        if forced:
            idx_Bl = forced_idx[si].to(device=ex.device, dtype=torch.long)
        tokens.append(idx_Bl)
        h_BlC = embed_tokens(ex.codebook_VC, si, K, idx_Bl, logits_BlV, params, rng, hard=forced)
        del logits_BlV  # a view of the raw 2B-row logits: freed before the next scale's are made
        x_BlC = ex.next_input(si, h_BlC.transpose(1, 2).reshape(B, Cv, pn, pn))
        if on_scale is not None:
            on_scale(si)
    return Generation(images=ex.decode().add(1).mul_(0.5), tokens=tokens)


def embed_tokens(codebook_VC: torch.Tensor, si: int, K: int, idx_Bl: torch.Tensor, logits_BlV: torch.Tensor,
                 params: SamplingParams, rng: Optional[torch.Generator], hard: bool = False) -> torch.Tensor:
    """(B, l, Cvae): the tokens' codebook vectors; with more_smooth (and tokens not forced), the
    official Gumbel-softmax mix of the codebook, drawing its noise from rng."""
    if not params.more_smooth:
        return codebook_VC[idx_Bl]
    # drawn even for forced tokens, so that the generator advances as in an unforced run
    soft = gumbel_softmax_with_rng(logits_BlV.mul(1 + si / (K - 1)), tau=smooth_temperature(si, K), rng=rng)
    return codebook_VC[idx_Bl] if hard else soft @ codebook_VC.unsqueeze(0)


def generate(ex: ScaleExecutor, label_B: torch.Tensor, rng: Optional[torch.Generator], params: SamplingParams,
             policy: Policy, want_trace: bool = False, forced_idx: Sequence[torch.Tensor] = (),
             on_scale: Optional[Callable[[int], None]] = None) -> Generation:
    """The loop under a pruning policy; with want_trace, what the policy saw and decided per image."""
    decider = policy.begin(label_B.shape[0], ex.patch_nums, ex.depth, ex.device)
    observe = policy.name != "none" or want_trace
    result = run_scales(ex, label_B, rng, params, decider, observe, forced_idx, on_scale)
    if want_trace:
        result.trace = build_trace(decider.trace(), policy, ex.patch_nums, ex.depth, ex.embed_dim)
    return result


def build_trace(raw: dict, policy: Policy, patch_nums, depth: int, C: int) -> List[dict]:
    """Per image: what NOVA saw and decided, and the transformer FLOPs it saved (CFG: 2 rows)."""
    kept_SN = raw["kept_SN"]
    dense = transformer_flops(dense_kept(patch_nums, depth), rows=2, C=C)
    pruned = transformer_flops(kept_SN, rows=2, C=C)
    images = []
    for b, curve in enumerate(raw["entropy_curve_B"]):
        images.append({
            "policy": policy.name,
            "entropy_curve": curve,
            "activation_scale": raw.get("activation_scale_B", [None] * len(raw["entropy_curve_B"]))[b],
            **({"t_star": raw["t_star_B"][b]} if "t_star_B" in raw else {}),
            "scale_ratio": [r[b] for r in raw["scale_ratio_SB"]],
            "kept_per_scale_layer": kept_SN,
            "transformer_flops_dense": dense,
            "transformer_flops_pruned": pruned,
            "flop_reduction": dense / pruned,
        })
    return images
