"""Reference sampler: VAR's scale loop written as small explicit steps over a preallocated KV cache.

condition -> first token map -> for each scale: scale_step -> CFG -> sample -> f_hat update ->
next token map; then the VQVAE decoder. With no pruning it computes exactly what the official
`autoregressive_infer_cfg` computes, drawing from the generator in the same order.
"""
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Union

import torch

from nova_deploy.errors import require
from nova_deploy.flops import dense_kept, transformer_flops
from nova_deploy.models.var_blocks import LayerKeep
from nova_deploy.nova.policy import Policy, ScalePlan
from nova_deploy.request_checks import check_sampler_request
from nova_deploy.resample import resample_tokens
from nova_deploy.sampling import (SamplingParams, combine_cfg, guidance_at, gumbel_softmax_with_rng,
                                  sample_with_top_k_top_p_, smooth_temperature)


class KVCache:
    """Per-layer K/V of every scale so far, in buffers allocated once for the whole pyramid.

    Layers may keep different token counts once pruning starts, so each layer has its own length.
    """

    def __init__(self, depth: int, batch: int, num_heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device):
        shape = (batch, num_heads, max_len, head_dim)
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(depth)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(depth)]
        self.lengths = [0] * depth

    @classmethod
    def for_model(cls, var, batch2: int, dtype: torch.dtype, device) -> "KVCache":
        return cls(var.depth, batch2, var.num_heads, var.L, var.C // var.num_heads, dtype, device)

    def prefix(self, layer: int):
        n = self.lengths[layer]
        if n == 0:
            return None, None
        return self.k[layer][:, :, :n], self.v[layer][:, :, :n]

    def append(self, layer: int, k_BHkc: torch.Tensor, v_BHkc: torch.Tensor) -> None:
        n, k = self.lengths[layer], k_BHkc.shape[2]
        self.k[layer][:, :, n:n + k].copy_(k_BHkc)
        self.v[layer][:, :, n:n + k].copy_(v_BHkc)
        self.lengths[layer] = n + k


@dataclass
class GenerationResult:
    images: torch.Tensor  # B 3 H W in [0, 1]
    idx_Bl: List[torch.Tensor] = field(default_factory=list)  # sampled token ids per scale
    f_hat: Optional[torch.Tensor] = None
    trace: Optional[List[dict]] = None  # per image: entropy curve, activation, ratios, kept, FLOPs


def resolve_labels(num_classes: int, B: int, label_B: Union[None, int, torch.Tensor, List[int]],
                   rng: Optional[torch.Generator], device) -> torch.Tensor:
    require(int(B) == B and B >= 1, f"batch size must be an integer >= 1, got {B}")
    if label_B is None:  # official: uniform random classes, drawn first from the same generator
        uniform = torch.full((1, num_classes), 1.0 / num_classes, device=device)
        return torch.multinomial(uniform, num_samples=B, replacement=True, generator=rng).reshape(B)
    if isinstance(label_B, int):
        label_B = torch.full((B,), num_classes if label_B < 0 else label_B, device=device)
    label_B = torch.as_tensor(label_B, dtype=torch.long, device=device)
    require(label_B.shape == (B,), f"expected {B} class labels, got shape {tuple(label_B.shape)}")
    bad = label_B[(label_B < 0) | (label_B > num_classes)]
    require(bad.numel() == 0, f"class id {bad[:1].tolist()} out of range: valid are 0..{num_classes - 1} "
                              f"(or {num_classes}, the null class)")
    return label_B


def make_generator(g_seed: Optional[int], device) -> Optional[torch.Generator]:
    if g_seed is None:
        return None
    return torch.Generator(device=device).manual_seed(int(g_seed))


@torch.no_grad()
def generate(var, B: int, label_B=None, g_seed: Optional[int] = None,
             params: SamplingParams = SamplingParams(),
             on_scale: Optional[Callable[[int], None]] = None, policy: Policy = Policy(),
             want_trace: bool = False, forced_idx: Optional[List[torch.Tensor]] = None) -> GenerationResult:
    """policy decides which tokens each layer computes (default: every token, the official sampler);
    on_scale(si) is called after each scale (progress display). forced_idx: token ids (B, pn*pn) of
    the first len(forced_idx) scales, taken instead of the sampled ones (teacher forcing, to find the
    scale at which a model loses what it was asked for); the generator is drawn from as without it."""
    check_sampler_request(var, B, label_B, g_seed, params)
    device = var.lvl_1L.device
    vae, quant = var.vae, var.vae.quantize
    forced_idx = [] if forced_idx is None else list(forced_idx)
    require(len(forced_idx) <= len(var.patch_nums),
            f"forced_idx has {len(forced_idx)} scales; the model has {len(var.patch_nums)}")
    for si, idx in enumerate(forced_idx):
        pn = var.patch_nums[si]
        require(tuple(idx.shape) == (B, pn * pn), f"forced_idx[{si}] has shape {tuple(idx.shape)}; "
                                                  f"scale {si} needs ({B}, {pn * pn})")
        require(bool(((idx >= 0) & (idx < var.V)).all()), f"forced_idx[{si}] holds token ids outside 0..{var.V - 1}")
    rng = make_generator(g_seed, device)
    label_B = resolve_labels(var.num_classes, B, label_B, rng, device)
    K = len(var.patch_nums)

    cond = var.condition(label_B)
    x_BlC = var.first_token_map(cond)
    kv = KVCache.for_model(var, 2 * B, x_BlC.dtype, device)
    f_hat = cond.cond_BD.new_zeros(B, var.Cvae, var.patch_nums[-1], var.patch_nums[-1])
    result = GenerationResult(images=None)
    decider = policy.begin(B, var.patch_nums, var.depth, device)
    observe = policy.name != "none" or want_trace
    prev = None  # the previous scale's ScaleOutput: its branch outputs are the residual cache

    for si, pn in enumerate(var.patch_nums):
        plan = decider.plan(si, x_BlC)
        keeps = None if plan is None else layer_keeps(plan, prev, var.patch_nums[si - 1], pn, policy.upsample_mode)
        prefixes = [kv.prefix(i) for i in range(var.depth)]
        out = var.scale_step(x_BlC, cond, [p[0] for p in prefixes], [p[1] for p in prefixes], keeps)
        for i in range(var.depth):
            kv.append(i, out.k_new[i], out.v_new[i])
        prev = out

        logits_BlV = combine_cfg(out.logits_BlV, guidance_at(si, K, params.cfg))
        if observe:  # entropy of the guided distribution before top-k/top-p filter it in place
            decider.observe(si, logits_BlV, out.attn_branch, out.ffn_branch)
        idx_Bl = sample_with_top_k_top_p_(logits_BlV, rng=rng, top_k=params.top_k, top_p=params.top_p)[:, :, 0]
        forced = si < len(forced_idx)
        if forced:
            idx_Bl = forced_idx[si].to(device=device, dtype=torch.long)
        result.idx_Bl.append(idx_Bl)
        if params.more_smooth:
            ratio = si / (K - 1)
            soft = gumbel_softmax_with_rng(logits_BlV.mul(1 + ratio), tau=smooth_temperature(si, K), rng=rng)
            h_BlC = quant.embedding(idx_Bl) if forced else soft @ quant.embedding.weight.unsqueeze(0)
        else:
            h_BlC = quant.embedding(idx_Bl)
        h_BChw = h_BlC.transpose_(1, 2).reshape(B, var.Cvae, pn, pn)
        f_hat, next_map = quant.get_next_autoregressive_input(si, K, f_hat, h_BChw)
        if si != K - 1:
            x_BlC = var.next_token_map(si + 1, next_map)
        if on_scale is not None:
            on_scale(si)

    result.f_hat = f_hat
    result.images = vae.fhat_to_img(f_hat).add_(1).mul_(0.5)
    if want_trace:
        result.trace = build_trace(decider.trace(), policy, var.patch_nums, var.depth, var.C)
    return result


def layer_keeps(plan: ScalePlan, prev, pn_prev: int, pn: int, mode: str) -> List[Optional[LayerKeep]]:
    """Execution inputs of a plan: CFG rows reuse their sample's kept positions; pruned tokens
    receive the previous scale's branch output of the same layer, upsampled to this grid."""
    keeps = []
    for i, idx_Bk in enumerate(plan.idx_N):
        if idx_Bk is None:
            keeps.append(None)
            continue
        keeps.append(LayerKeep(idx_Bk=idx_Bk.repeat(2, 1),
                               attn_fill_BlC=resample_tokens(prev.attn_branch[i], pn_prev, pn, mode),
                               ffn_fill_BlC=resample_tokens(prev.ffn_branch[i], pn_prev, pn, mode)))
    return keeps


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
            "scale_ratio": [r[b] for r in raw["scale_ratio_SB"]],
            "kept_per_scale_layer": kept_SN,
            "transformer_flops_dense": dense,
            "transformer_flops_pruned": pruned,
            "flop_reduction": dense / pruned,
        })
    return images
