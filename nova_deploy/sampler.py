"""The reference sampler: the generation loop (nova_deploy.generation) on the PyTorch model.

condition -> first token map -> for each scale: scale_step -> CFG -> sample -> f_hat update ->
next token map; then the VQVAE decoder. With no pruning it computes exactly what the official
`autoregressive_infer_cfg` computes, drawing from the generator in the same order.
"""
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import torch

from nova_deploy.errors import require
from nova_deploy.generation.inputs import make_generator, resolve_labels
from nova_deploy.generation.loop import generate as run_generation
from nova_deploy.generation.model_executor import ModelExecutor
from nova_deploy.models.var import VAR
from nova_deploy.nova.policy import Policy
from nova_deploy.request_checks import check_sampler_request
from nova_deploy.sampling import SamplingParams


@dataclass
class GenerationResult:
    images: torch.Tensor  # B 3 H W in [0, 1]
    idx_Bl: List[torch.Tensor] = field(default_factory=list)  # sampled token ids per scale
    f_hat: Optional[torch.Tensor] = None
    trace: Optional[List[dict]] = None  # per image: entropy curve, activation, ratios, kept, FLOPs


@torch.no_grad()
def generate(var: VAR, B: int, label_B=None, g_seed: Optional[int] = None,
             params: SamplingParams = SamplingParams(),
             on_scale: Optional[Callable[[int], None]] = None, policy: Policy = Policy(),
             want_trace: bool = False, forced_idx: Optional[List[torch.Tensor]] = None) -> GenerationResult:
    """policy decides which tokens each layer computes (default: every token, the official sampler);
    on_scale(si) is called after each scale (progress display). forced_idx: token ids (B, pn*pn) of
    the first len(forced_idx) scales, taken instead of the sampled ones (teacher forcing, to find the
    scale at which a model loses what it was asked for); the generator is drawn from as without it."""
    check_sampler_request(var, B, label_B, g_seed, params)
    device = var.lvl_1L.device
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
    executor = ModelExecutor(var, fill_mode=policy.upsample_mode)
    result = run_generation(executor, label_B, rng, params, policy, want_trace, forced_idx, on_scale)
    return GenerationResult(images=result.images, idx_Bl=result.tokens, f_hat=executor.f_hat, trace=result.trace)


@torch.no_grad()
def autoregressive_infer_cfg(var: VAR, B: int, label_B, g_seed: Optional[int] = None, cfg: float = 1.5,
                             top_k: int = 0, top_p: float = 0.0, more_smooth: bool = False) -> torch.Tensor:
    """The official `VAR.autoregressive_infer_cfg(B, label_B, ...)` as a function of the model (the
    model sits below the loop that samples from it): images (B, 3, H, W) in [0, 1]; same seed, same
    images as the official sampler."""
    params = SamplingParams(cfg=cfg, top_k=top_k, top_p=top_p, more_smooth=more_smooth)
    return generate(var, B=B, label_B=label_B, g_seed=g_seed, params=params).images
