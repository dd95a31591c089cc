"""NOVA as the third-party summary of the paper describes it (../shared/NOVA_PAPER_NOTES.md),
beside the project's own design (activation.py, schedule.py), so the two can be measured side by side.

- Activation by growth rate: g_t = e_t - e_(t-1) (e: mean token entropy of a scale); the baseline
  is the mean of g_1..g_m over the first m growths (m = baseline_growths); t* is the first
  t > m whose two-scale average (g_t + g_(t+1)) / 2 falls below it. g_(t+1) is known only after
  scale t+1 ran, so pruning starts at scale t* + 2: one scale later than the summary's t*, the
  earliest an online decision can confirm it.
- Scale linkage: z_t = rho (t* + 1) / t + growth_sign * lambda * tanh(g_(t-1)), Ratio_t = sigmoid(z_t),
  g_(t-1) the latest growth known before scale t runs. ratio_reading "keep": Ratio_t is the fraction
  of tokens kept (pruned 1 - Ratio_t), as the formula falling with t implies; "prune": it is the
  fraction pruned. growth_sign -1 is the summary's formula (rising entropy keeps fewer tokens), +1
  its prose (pruning shrinks while entropy still changes).
- Layer linkage: each layer's statistic is the entropy of its output's energy over channels
  (p_c = x_c^2 / sum x^2, normalised by log C, mean over tokens) at the previous scale; a layer
  above the mean of the layers before it keeps more: kept_l = kept * (1 + (h_l - mean) / (h_l + mean)).
"""
import math
from typing import Optional, Sequence

import torch

from nova_deploy.errors import require
from nova_deploy.nova.config import NovaSummaryConfig

UNDECIDED = -1


class GrowthActivationTracker:
    """Follows a batch's scale entropies as the scales run and decides, per sample, t* and the
    scale at which pruning starts (t* + 2, at least min_activation_scale; the fallback scale when
    no t* is found before it). Once decided, a sample's activation never changes."""

    def __init__(self, batch: int, cfg: NovaSummaryConfig, num_scales: int, device=None):
        self.min_scale, self.fallback = cfg.activation_bounds(num_scales)
        self.cfg, self.num_scales = cfg, num_scales
        self.curve_Bs = torch.full((batch, num_scales), float("nan"), dtype=torch.float64, device=device)
        self.observed = 0
        self.t_star_B = torch.full((batch,), UNDECIDED, dtype=torch.long, device=device)
        self.activation_B = torch.full((batch,), UNDECIDED, dtype=torch.long, device=device)
        self._decide_fallback()

    def observe(self, si: int, e_B: torch.Tensor) -> None:
        """Record the scale entropies of scale si (call after running it, scales in order)."""
        require(si == self.observed, f"observe scales in order: expected scale {self.observed}, got {si}")
        require(e_B.shape == self.curve_Bs.shape[:1],
                f"e_B must have shape ({self.curve_Bs.shape[0]},), got {tuple(e_B.shape)}")
        self.curve_Bs[:, si] = e_B.to(self.curve_Bs.device, torch.float64)
        self.observed += 1
        m, t = self.cfg.baseline_growths, si - 1  # g_(t+1) = e[si] - e[si-1] just became known
        undecided_B = self.activation_B == UNDECIDED
        if t > m and bool(undecided_B.any()):
            g = self.curve_Bs[:, 1:si + 1] - self.curve_Bs[:, :si]  # g[:, j - 1] is g_j
            baseline_B = g[:, :m].mean(dim=1)
            found_B = undecided_B & ((g[:, t - 1] + g[:, t]) / 2 < baseline_B)
            self.t_star_B = torch.where(found_B, torch.full_like(self.t_star_B, t), self.t_star_B)
            start = torch.full_like(self.activation_B, max(t + 2, self.min_scale))
            self.activation_B = torch.where(found_B, start, self.activation_B)
        self._decide_fallback()

    def _decide_fallback(self) -> None:
        """Samples still undecided when the next scale to run is the fallback scale start there
        (t* := fallback - 2, so that the ratio law sees the same t* + 2 = activation)."""
        if self.observed < self.fallback:
            return
        undecided_B = self.activation_B == UNDECIDED
        self.activation_B = torch.where(undecided_B, torch.full_like(self.activation_B, self.fallback),
                                        self.activation_B)
        self.t_star_B = torch.where(undecided_B, torch.full_like(self.t_star_B, self.fallback - 2), self.t_star_B)

    def is_active(self, si: int) -> torch.Tensor:
        """BoolTensor (B,): whether the scale about to run, si, is pruned for each sample."""
        return (self.activation_B != UNDECIDED) & (si >= self.activation_B)

    def latest_growth(self, si: int) -> torch.Tensor:
        """g_(si-1) = e[si-1] - e[si-2] per sample, the latest growth known before scale si runs."""
        require(2 <= si <= self.observed, f"the growth before scale {si} needs scales {si - 2} and {si - 1} observed")
        return self.curve_Bs[:, si - 1] - self.curve_Bs[:, si - 2]


def summary_scale_ratio_B(si: int, tracker: GrowthActivationTracker, cfg: NovaSummaryConfig) -> torch.Tensor:
    """Pruned fraction of scale si per sample (float64, B): the sigmoid law under cfg's reading,
    capped at r_max; 0 where pruning is not active."""
    active_B = tracker.is_active(si)
    if si < 2 or not bool(active_B.any()):
        return torch.zeros(active_B.shape, dtype=torch.float64, device=active_B.device)
    t_star_B = tracker.t_star_B.to(torch.float64)
    z_B = cfg.rho * (t_star_B + 1) / si + cfg.growth_sign * cfg.lam * torch.tanh(tracker.latest_growth(si))
    ratio_B = torch.sigmoid(z_B)
    pruned_B = 1 - ratio_B if cfg.ratio_reading == "keep" else ratio_B
    return torch.where(active_B, pruned_B.clamp(0.0, cfg.r_max), torch.zeros_like(pruned_B))


def channel_entropy_BN(branches: Sequence[torch.Tensor], batch: int,
                       plus: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """Per layer, the mean over tokens of the entropy of a branch output's energy over channels,
    normalised by log C: (batch, N) float32 in [0, 1] (conditional rows only). plus: a second
    output per layer added to the first (attention + FFN). All layers in one stacked op each, so
    the cost does not grow with depth in ops (the runtime's time between graph calls is per op)."""
    x_NBlC = torch.stack([x[:batch] for x in branches])
    if plus is not None:
        x_NBlC.add_(torch.stack([x[:batch] for x in plus]))
    energy = x_NBlC.float().square_()
    p = energy.div_(energy.sum(dim=-1, keepdim=True).clamp_min_(torch.finfo(torch.float32).tiny))
    h_NB = torch.xlogy(p, p).sum(dim=-1).div_(-math.log(x_NBlC.shape[-1])).mean(dim=2)
    return h_NB.t()


def linked_layer_ratios(r_scale: float, layer_entropy_N: torch.Tensor, cfg: NovaSummaryConfig) -> torch.Tensor:
    """Per-layer pruned fractions (float64, N): layer 0 gets r_scale; layer l > 0 keeps
    (1 - r_scale) * (1 + (h_l - mean(h_<l)) / (h_l + mean(h_<l))), pruned fractions clamped to
    [0, r_max]. Without layer linkage every layer gets r_scale."""
    require(layer_entropy_N.dim() == 1, f"layer_entropy_N must be 1-D, got shape {tuple(layer_entropy_N.shape)}")
    N = layer_entropy_N.shape[0]
    if r_scale == 0 or not cfg.layer_linkage:
        return torch.full((N,), float(r_scale), dtype=torch.float64)
    h = layer_entropy_N.detach().to("cpu", torch.float64)
    earlier_mean = h.cumsum(0)[:-1] / torch.arange(1, N, dtype=torch.float64)
    total = h[1:] + earlier_mean
    factor = torch.ones(N, dtype=torch.float64)
    factor[1:] = torch.where(total > 0, 1 + (h[1:] - earlier_mean) / total.clamp_min(1e-30), 1.0)
    return (1 - (1 - r_scale) * factor).clamp(0.0, cfg.r_max)
