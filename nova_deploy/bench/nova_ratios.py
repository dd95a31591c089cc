"""The per-scale ratios NOVA's default config chooses on the reference model, as a `fixed:` policy.

Speed on a model with random weights (d16) says nothing if its pruning decisions are random too:
its entropy curves are noise. So the benchmark prunes it with fixed ratios, those NOVA's default
config chooses on the bundled reference model: the mean over samples of the scale ratio each
sample asked for (trace `scale_ratio`; NOVA spreads it over the layers with the same mean).

Mapping onto a model with another number of scales: by position from the end. The reference
model has 7 scales (1,2,3,4,5,6,8); d16 has 10 (1,2,3,4,5,6,8,10,13,16). Scale K-1-j of the target
gets the reference's scale 6-j for j = 0..6 (last to last, ..., the reference's first scale to the
target's scale K-7), and the target's remaining first scales get 0 (NOVA never prunes the first
scales). For d16: scales 3..9 take the reference's 0..6, so d16's 8x8..16x16 scales take the
ratios of the reference's 5x5..8x8 (the reference never prunes before its scale 2 -> d16 scale 5).
"""
from dataclasses import dataclass
from typing import List, Sequence

import torch

from nova_deploy.nova.policy import make_policy
from nova_deploy.sampling import SamplingParams


@dataclass
class NovaRatios:
    reference_ratios: List[float]  # per scale of the reference model
    mapped_ratios: List[float]  # per scale of the target model
    samples: int
    reference_flop_reduction: float  # NOVA's mean FLOP reduction over those samples on the reference model

    @property
    def fixed(self) -> str:
        return "fixed:" + ",".join(f"{r:.3f}".rstrip("0").rstrip(".") if r else "0" for r in self.mapped_ratios)

    def to_json(self) -> dict:
        return {"reference_ratios": self.reference_ratios, "mapped_ratios": self.mapped_ratios, "fixed": self.fixed,
                "samples": self.samples, "reference_flop_reduction": self.reference_flop_reduction,
                "mapping": "by position from the end; the target's extra first scales get 0"}


def map_from_end(ratios: Sequence[float], num_scales: int) -> List[float]:
    """ratios of a K_ref-scale model -> num_scales ratios, aligned at the last scale."""
    k = len(ratios)
    return [float(ratios[k - num_scales + si]) if k - num_scales + si >= 0 else 0.0 for si in range(num_scales)]


@torch.no_grad()
def nova_reference_ratios(num_scales: int, samples: int = 20, batch: int = 10, seed: int = 0,
                          params: SamplingParams = SamplingParams(), var=None) -> NovaRatios:
    """Run NOVA's default config on the reference model (bundled unless `var` is given) with the
    reference sampler and return its mean per-scale ratios mapped onto num_scales scales."""
    from nova_deploy.sampler import generate

    if var is None:
        from nova_deploy.model_source import resolve_models

        var = resolve_models(None, None, None).var
    policy = make_policy("nova")
    per_image, reductions = [], []
    for start in range(0, samples, batch):
        B = min(batch, samples - start)
        labels = torch.arange(start, start + B) % var.num_classes
        res = generate(var, B, labels, g_seed=seed + start, params=params, policy=policy, want_trace=True)
        per_image += [img["scale_ratio"] for img in res.trace]
        reductions.append(res.trace[0]["flop_reduction"] * B)
    mean = torch.tensor(per_image, dtype=torch.float64).mean(0).tolist()
    mean = [round(r, 3) for r in mean]
    return NovaRatios(reference_ratios=mean, mapped_ratios=map_from_end(mean, num_scales), samples=samples,
                      reference_flop_reduction=sum(reductions) / samples)
