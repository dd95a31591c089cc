"""How much NOVA prunes: a ratio per scale, spread over the layers, rounded to token counts.

A ratio is the fraction of a scale's tokens that a layer does not compute (they receive cached
residuals instead); a kept count is the number of tokens it does compute.
"""
import math
import numbers
from typing import List, Sequence, Union

import torch

from nova_deploy.errors import require
from nova_deploy.nova.config import NovaConfig, check_ratio


def scale_ratio(si: int, activation_si: int, entropy_growth: float, cfg: NovaConfig) -> float:
    """Scale ratio of one sample at scale si, given its activation scale (-1: undecided):
    0 before activation, else min(r_max, base_ratio + growth_per_scale * (si - a)
    + entropy_gain * max(0, entropy_growth))."""
    if activation_si < 0 or si < activation_si:
        return 0.0
    r = cfg.base_ratio + cfg.growth_per_scale * (si - activation_si) + cfg.entropy_gain * max(0.0, entropy_growth)
    return min(cfg.r_max, r)


def scale_ratio_B(si: int, activation_B: torch.Tensor, entropy_growth_B: torch.Tensor, cfg: NovaConfig) -> torch.Tensor:
    """`scale_ratio` for a batch: float64 tensor (B,)."""
    a_B = activation_B.to(torch.float64)
    r_B = (cfg.base_ratio + cfg.growth_per_scale * (si - a_B)
           + cfg.entropy_gain * entropy_growth_B.to(torch.float64).clamp(min=0)).clamp(max=cfg.r_max)
    active_B = (activation_B >= 0) & (si >= activation_B)
    return torch.where(active_B, r_B, torch.zeros_like(r_B))


def layer_ratios(r_scale: float, layer_stat_N: torch.Tensor, cfg: NovaConfig) -> torch.Tensor:
    """Per-layer ratios (float64, N) whose mean over the prunable layers is r_scale.

    layer_stat_N measures how much each layer changes the residual stream; smaller -> pruned more.
    Over the prunable layers (all but the first protect_first_layers, which get 0):
      z_l = (mean(stat) - stat_l) / max_l |stat_l - mean(stat)|   in [-1, 1]; all 0 if stats are equal
      spread = min(layer_spread, r_max / r_scale - 1, 1)           (0 when r_scale == 0)
      r_l = r_scale * (1 + spread * z_l)
    z has mean 0, so mean(r_l) == r_scale exactly (up to float rounding), and the spread bound
    keeps every r_l in [r_scale * (1 - spread), r_scale * (1 + spread)] within [0, r_max].
    """
    require(layer_stat_N.dim() == 1,
            f"layer_stat_N must be a 1-D tensor of N layers, got shape {tuple(layer_stat_N.shape)}")
    N, first = layer_stat_N.shape[0], cfg.protect_first_layers
    require(first < N, f"protect_first_layers={first} must be < the number of layers ({N})")
    require(0.0 <= r_scale <= cfg.r_max, f"r_scale must be in [0, r_max={cfg.r_max}], got {r_scale}")
    ratios_N = torch.zeros(N, dtype=torch.float64)
    if r_scale == 0:
        return ratios_N
    stat = layer_stat_N.detach().to("cpu", torch.float64)[first:]
    dev = stat - stat.mean()
    largest = dev.abs().max()
    z = -dev / largest if largest > 0 else torch.zeros_like(dev)
    spread = max(0.0, min(cfg.layer_spread, cfg.r_max / r_scale - 1.0, 1.0))
    ratios_N[first:] = (r_scale * (1.0 + spread * z)).clamp(0.0, cfg.r_max)  # clamp: float rounding only
    return ratios_N


def kept_counts(n_tokens: int, ratios_N: Union[Sequence[float], torch.Tensor]) -> List[int]:
    """Tokens each layer computes at a scale of n_tokens: kept_l = n - pruned_l, in [1, n].

    pruned_l is the largest-remainder rounding of want_l = ratio_l * n: floor(want_l) each, then
    one more to the layers with the largest fractional parts (lower layer first on ties) until
    sum(pruned) == round(sum(want)) = round(mean(ratios) * n * N), rounding half up. A layer never
    prunes all of its tokens (pruned_l <= n - 1): a unit that a capped layer cannot take goes to
    the next-largest remainder, so every pruned_l stays floor(want_l) or ceil(want_l); only when
    no layer can take it (tiny n) does the sum fall short.
    """
    ok = isinstance(n_tokens, numbers.Integral) and not isinstance(n_tokens, bool) and n_tokens >= 1
    require(ok, f"n_tokens must be an integer >= 1, got {n_tokens!r}")
    ratios = [float(r) for r in (ratios_N.tolist() if isinstance(ratios_N, torch.Tensor) else ratios_N)]
    for layer, r in enumerate(ratios):
        check_ratio(f"ratios_N[{layer}]", r)
    n_tokens = int(n_tokens)
    want = [r * n_tokens for r in ratios]
    pruned = [min(math.floor(w), n_tokens - 1) for w in want]
    missing = math.floor(sum(want) + 0.5) - sum(pruned)  # round half up, not Python's half-to-even
    by_remainder = sorted(range(len(want)), key=lambda l: (-(want[l] - math.floor(want[l])), l))
    for layer in by_remainder:
        if missing <= 0:
            break
        if want[layer] > pruned[layer] and pruned[layer] < n_tokens - 1:
            pruned[layer] += 1
            missing -= 1
    return [n_tokens - p for p in pruned]


def batch_kept_counts(kept_BN: Union[Sequence[Sequence[int]], torch.Tensor]) -> List[int]:
    """One kept count per layer for the whole batch: the maximum over samples.

    Kept indices are a B x k tensor, so every sample of a batch computes the same number of
    tokens per layer. The least-pruned sample sets it; the others are pruned less than they
    asked, never more. Cost: a batch runs at the speed of its least-pruned sample, so a sample
    whose pruning has not activated yet (keeps all n) disables pruning for the batch at that
    scale; batching samples of similar entropy curves recovers the speed-up.
    """
    kept = torch.as_tensor(kept_BN, dtype=torch.long)
    require(kept.dim() == 2 and kept.shape[0] >= 1, f"kept_BN must be B x N with B >= 1, got shape {tuple(kept.shape)}")
    return kept.max(dim=0).values.tolist()
