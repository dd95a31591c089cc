"""What a pruning policy decides per generation: kept token indices per scale and layer. A decider
only *decides*; the scale step *executes*. The same decisions drive the PyTorch sampler and the runtime.

    decider = policy.begin(batch, patch_nums, depth)
    for each scale si:
        plan = decider.plan(si, x_BlC)           # None: run the scale dense
        ... run the scale ...
        decider.observe(si, logits_BlV, branches) # CFG-combined logits, before top-k/top-p
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch

from nova_deploy.errors import InvalidArgument
from nova_deploy.nova.activation import ActivationTracker
from nova_deploy.nova.config import FastVARConfig, FixedConfig, NovaConfig, NovaSummaryConfig
from nova_deploy.nova.entropy import scale_entropy, token_entropy
from nova_deploy.nova.schedule import batch_kept_counts, kept_counts, layer_ratios, scale_ratio_B
from nova_deploy.nova.selection import fastvar_importance, importance_from_entropy, nested_kept, select_kept
from nova_deploy.nova.summary import (GrowthActivationTracker, channel_entropy_BN, linked_layer_ratios,
                                      summary_scale_ratio_B)


@dataclass
class ScalePlan:
    """Decisions for one scale, shared by the batch: kept count and kept positions per layer
    (idx None: that layer keeps every token). Positions index the B samples; CFG rows reuse them."""
    kept_N: List[int]
    idx_N: List[Optional[torch.Tensor]]
    ratio_B: List[float]  # the scale ratio each sample asked for (before the batch rule)


@dataclass
class ScaleRecord:
    si: int
    entropy_B: List[float]
    kept_N: List[int]
    ratio_B: List[float]


@dataclass
class Decider:
    """Per-generation state of a policy; subclasses fill plan()."""
    batch: int
    patch_nums: Sequence[int]
    depth: int
    records: List[ScaleRecord] = field(default_factory=list)
    _last_plan: Optional[ScalePlan] = None
    _H_prev_Bl: Optional[torch.Tensor] = None

    def plan(self, si: int, x_BlC: torch.Tensor) -> Optional[ScalePlan]:
        self._last_plan = self._decide(si, x_BlC)
        return self._last_plan

    def _decide(self, si: int, x_BlC: torch.Tensor) -> Optional[ScalePlan]:
        return None

    def observe(self, si: int, logits_BlV: torch.Tensor, attn_branch: Sequence[torch.Tensor],
                ffn_branch: Sequence[torch.Tensor]) -> None:
        H_Bl = token_entropy(logits_BlV)
        e_B = scale_entropy(H_Bl)
        self._H_prev_Bl = H_Bl
        n = self.patch_nums[si] ** 2
        plan = self._last_plan
        self.records.append(ScaleRecord(
            si=si, entropy_B=e_B.tolist(),
            kept_N=list(plan.kept_N) if plan else [n] * self.depth,
            ratio_B=list(plan.ratio_B) if plan else [0.0] * self.batch))
        self._observe_more(si, e_B, attn_branch, ffn_branch)

    def _observe_more(self, si, e_B, attn_branch, ffn_branch) -> None:
        pass

    def trace(self) -> Dict:
        return {"entropy_curve_B": [[r.entropy_B[b] for r in self.records] for b in range(self.batch)],
                "kept_SN": [r.kept_N for r in self.records],
                "scale_ratio_SB": [r.ratio_B for r in self.records]}

    def _entropy_plan(self, si: int, kept_BN: List[List[int]], ratio_B: List[float], mode: str,
                      imp_Bl: Optional[torch.Tensor] = None) -> Optional[ScalePlan]:
        """Turn per-sample kept counts into a batch plan that keeps the most important tokens:
        by default those of highest prior-scale entropy."""
        n = self.patch_nums[si] ** 2
        kept_N = batch_kept_counts(kept_BN)
        if all(k == n for k in kept_N):
            return None
        if imp_Bl is None:
            imp_Bl = importance_from_entropy(self._H_prev_Bl, self.patch_nums[si - 1], self.patch_nums[si], mode)
        idx_N = nested_kept(imp_Bl, kept_N)
        return ScalePlan(kept_N=kept_N, idx_N=[None if k == n else idx for k, idx in zip(kept_N, idx_N)],
                         ratio_B=ratio_B)


class DenseDecider(Decider):
    pass


@dataclass
class NovaDecider(Decider):
    cfg: NovaConfig = field(default_factory=NovaConfig)
    tracker: Optional[ActivationTracker] = None
    layer_stat_BN: Optional[torch.Tensor] = None

    def _decide(self, si, x_BlC):
        if si == 0 or self._H_prev_Bl is None:
            return None
        active_B = self.tracker.is_active(si)
        if not bool(active_B.any()):
            return None
        if self.layer_stat_BN is None:
            raise InvalidArgument(f"policy nova: no branch outputs were observed at scale {si - 1}, so scale {si} "
                                  f"cannot be planned (an export prunes only from its --prune-from scale)")
        ratio_B = scale_ratio_B(si, self.tracker.activation_B, self.tracker.entropy_growth(si), self.cfg)
        n = self.patch_nums[si] ** 2
        kept_BN = [kept_counts(n, layer_ratios(float(r), self.layer_stat_BN[b], self.cfg)) for b, r in enumerate(ratio_B)]
        imp_Bl = fastvar_importance(x_BlC[:self.batch]) if self.cfg.importance == "distance" else None
        return self._entropy_plan(si, kept_BN, ratio_B.tolist(), self.cfg.upsample_mode, imp_Bl)

    def _observe_more(self, si, e_B, attn_branch, ffn_branch):
        self.tracker.observe(si, e_B)
        if not attn_branch:  # an exported scale emits branches only where the next scale can be pruned:
            self.layer_stat_BN = None  # no statistic is needed before a scale that cannot be pruned
            return
        B = self.batch
        # layer-linkage statistic: how strongly each layer's branches write into the residual stream
        # (mean token L2 norm of attention + FFN branch, conditional rows); small = changes little
        self.layer_stat_BN = torch.stack(
            [(a[:B] + f[:B]).float().norm(dim=-1).mean(dim=1) for a, f in zip(attn_branch, ffn_branch)], dim=1)

    def trace(self):
        t = super().trace()
        t["activation_scale_B"] = self.tracker.activation_B.tolist()
        return t


@dataclass
class NovaSummaryDecider(Decider):
    cfg: NovaSummaryConfig = field(default_factory=NovaSummaryConfig)
    tracker: Optional[GrowthActivationTracker] = None
    # the previous scale's branch outputs (attention, FFN), read only when a scale is planned: they
    # stay valid until the next scale runs (the runtime's branch buffers alternate by scale)
    prev_branches: Optional[tuple] = None

    def _decide(self, si, x_BlC):
        if si == 0 or self._H_prev_Bl is None or not bool(self.tracker.is_active(si).any()):
            return None
        if self.cfg.layer_linkage:
            if self.prev_branches is None:
                raise InvalidArgument(f"policy nova-summary: no branch outputs were observed at scale {si - 1}, so "
                                      f"scale {si} cannot be planned (an export prunes only from its --prune-from "
                                      f"scale)")
            attn, ffn = self.prev_branches
            layer_entropy_BN = channel_entropy_BN(attn, self.batch, plus=ffn)
        ratio_B = summary_scale_ratio_B(si, self.tracker, self.cfg)
        n = self.patch_nums[si] ** 2
        kept_BN = []
        for b, r in enumerate(ratio_B.tolist()):
            stat_N = layer_entropy_BN[b] if self.cfg.layer_linkage else torch.zeros(self.depth)
            kept_BN.append(kept_counts(n, linked_layer_ratios(r, stat_N, self.cfg)))
        imp_Bl = fastvar_importance(x_BlC[:self.batch]) if self.cfg.importance == "distance" else None
        return self._entropy_plan(si, kept_BN, ratio_B.tolist(), self.cfg.upsample_mode, imp_Bl)

    def _observe_more(self, si, e_B, attn_branch, ffn_branch):
        self.tracker.observe(si, e_B)
        linked = attn_branch and self.cfg.layer_linkage
        self.prev_branches = (attn_branch, ffn_branch) if linked else None

    def trace(self):
        t = super().trace()
        t["activation_scale_B"] = self.tracker.activation_B.tolist()
        t["t_star_B"] = self.tracker.t_star_B.tolist()
        return t


@dataclass
class FixedDecider(Decider):
    cfg: FixedConfig = None

    def _decide(self, si, x_BlC):
        r = self.cfg.scale_ratios[si]
        if si == 0 or (r == 0 and self.cfg.layer_ratios is None):
            return None
        n = self.patch_nums[si] ** 2
        ratios_N = self.cfg.layer_ratios[si] if self.cfg.layer_ratios is not None else [r] * self.depth
        kept = kept_counts(n, ratios_N)
        return self._entropy_plan(si, [kept] * self.batch, [r] * self.batch, self.cfg.upsample_mode)


@dataclass
class FastVARDecider(Decider):
    cfg: FastVARConfig = None

    def _decide(self, si, x_BlC):
        r = self.cfg.ratio_at(si, len(self.patch_nums))
        if r == 0:
            return None
        n = self.patch_nums[si] ** 2
        k = max(1, n - round(r * n))
        # FastVAR scores each layer's input; here the scale's input tokens (conditional rows) score
        # every layer, so that the decision is made before the scale runs, as engines need
        idx = select_kept(fastvar_importance(x_BlC[:self.batch]), k)
        return ScalePlan(kept_N=[k] * self.depth, idx_N=[idx] * self.depth, ratio_B=[r] * self.batch)
