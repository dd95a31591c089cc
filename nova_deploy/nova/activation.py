"""When NOVA starts pruning: after the growth of the scale entropy peaks.

The mean token entropy of a scale, e[j], rises while the model still decides the content
and slows once it only adds detail. The scale after the growth peaks is where pruning begins.
"""
import torch

from nova_deploy.errors import require
from nova_deploy.nova.config import NovaConfig

UNDECIDED = -1


def find_activation_scale(curve_Bs: torch.Tensor, cfg: NovaConfig, num_scales: int) -> torch.Tensor:
    """Activation scale per sample from the scale entropies e[0..s-1] seen so far: LongTensor (B,),
    -1 where it is not decided yet.

    Second difference d2[j] = e[j] - 2 e[j-1] + e[j-2] for j >= 2 (the change of the growth
    g[j] = e[j] - e[j-1]). The inflection is the first j >= 3 with d2[j-1] > 0 and d2[j] <= 0:
    acceleration turns into deceleration, the growth peaks at scale j-1. e[j] is only known after
    scale j ran, so pruning activates at the next scale: a = max(j + 1, min_activation_scale).
    Only j + 1 <= fallback is searched; when the curve reaches the fallback scale (s >= fallback)
    without an inflection, a = fallback. The result for a prefix of the curve never changes
    when more scales are appended.
    """
    require(curve_Bs.dim() == 2, f"curve_Bs must be B x s, got shape {tuple(curve_Bs.shape)}")
    lowest, fallback = cfg.activation_bounds(num_scales)
    B, s = curve_Bs.shape
    act_B = torch.full((B,), UNDECIDED, dtype=torch.long, device=curve_Bs.device)
    e = curve_Bs.double()
    last_j = min(s - 1, fallback - 1)  # an inflection at j activates at j + 1, at most the fallback
    if last_j >= 3:
        d2 = e[:, 2:] - 2 * e[:, 1:-1] + e[:, :-2]  # d2[:, j - 2] is d2[j]
        js = torch.arange(3, last_j + 1, device=curve_Bs.device)
        turn_BJ = (d2[:, js - 3] > 0) & (d2[:, js - 2] <= 0)
        first_j_B = js[turn_BJ.int().argmax(dim=1)]  # argmax returns the first True
        found_B = turn_BJ.any(dim=1)
        act_B = torch.where(found_B, (first_j_B + 1).clamp(min=lowest), act_B)
    if s >= fallback:
        act_B = torch.where(act_B == UNDECIDED, torch.full_like(act_B, fallback), act_B)
    return act_B


class ActivationTracker:
    """Follows the scale entropies of a batch as the scales run and decides, per sample, the
    scale at which pruning starts. Once decided, a sample's activation never changes."""

    def __init__(self, batch: int, cfg: NovaConfig, num_scales: int, device=None):
        cfg.activation_bounds(num_scales)  # fail at construction, not mid-generation
        self.cfg, self.num_scales = cfg, num_scales
        self.curve_Bs = torch.full((batch, num_scales), float("nan"), dtype=torch.float32, device=device)
        self.observed = 0  # scales 0..observed-1 have entropies
        self.activation_B = find_activation_scale(self.curve_Bs[:, :0], cfg, num_scales)  # fallback 0 decides now
        self._undecided = bool((self.activation_B == UNDECIDED).any())

    def observe(self, si: int, e_B: torch.Tensor) -> None:
        """Record the scale entropies of scale si (call after running it, scales in order)."""
        require(si == self.observed, f"observe scales in order: expected scale {self.observed}, got {si}")
        require(e_B.shape == self.curve_Bs.shape[:1],
                f"e_B must have shape ({self.curve_Bs.shape[0]},), got {tuple(e_B.shape)}")
        self.curve_Bs[:, si] = e_B.float().to(self.curve_Bs.device)
        self.observed += 1
        if not self._undecided:  # a decided activation never changes: nothing left to find
            return
        found_B = find_activation_scale(self.curve_Bs[:, :self.observed], self.cfg, self.num_scales)
        self.activation_B = torch.where(self.activation_B == UNDECIDED, found_B, self.activation_B)
        self._undecided = bool((self.activation_B == UNDECIDED).any())

    def is_active(self, si: int) -> torch.Tensor:
        """BoolTensor (B,): whether the scale about to run, si, is pruned for each sample."""
        return (self.activation_B != UNDECIDED) & (si >= self.activation_B)

    def entropy_growth(self, si: int) -> torch.Tensor:
        """e[si-1] - e[a-1] per sample, the entropy growth since activation a known before running si
        (e[a-1] is the last entropy known at activation; e[0] when a == 0). 0 where not active."""
        active_B = self.is_active(si)
        if si == 0 or not bool(active_B.any()):
            return torch.zeros(active_B.shape, dtype=torch.float32, device=active_B.device)
        require(si <= self.observed, f"entropy growth at scale {si} needs scale {si - 1} observed first")
        ref_B = (self.activation_B - 1).clamp(0, si - 1)
        e_ref = self.curve_Bs.gather(1, ref_B.unsqueeze(1)).squeeze(1)
        return torch.where(active_B, self.curve_Bs[:, si - 1] - e_ref, torch.zeros_like(e_ref))
