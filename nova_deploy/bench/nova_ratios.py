"""The per-scale ratios NOVA's default config chooses on a bundled reference model, as a `fixed:` policy.

Speed on a model with random weights (d16) says nothing if its pruning decisions are random too:
its entropy curves are noise. So the benchmark prunes it with fixed ratios, those NOVA's default
config chooses on a bundled reference model: the mean over samples of the scale ratio each
sample asked for (trace `scale_ratio`; NOVA spreads it over the layers with the same mean).

The reference model is the bundled one on the target's own scale schedule when one is installed
(nova-ref-16 for the official 256px schedule of d16..d30): its ratios apply scale for scale.
Otherwise the default model's ratios are mapped by position from the end: scale K-1-j of the target
gets the reference's scale K_ref-1-j, and the target's remaining first scales get 0 (NOVA never
prunes the first scales).
"""
from dataclasses import dataclass
from typing import List, Sequence

import torch

from nova_deploy.nova.model_defaults import resolve_policy_text
from nova_deploy.sampling import SamplingParams


@dataclass
class NovaRatios:
    reference_model: str  # the bundled model the ratios were measured on
    reference_ratios: List[float]  # per scale of the reference model
    mapped_ratios: List[float]  # per scale of the target model
    samples: int
    reference_flop_reduction: float  # NOVA's mean FLOP reduction over those samples on the reference model

    @property
    def fixed(self) -> str:
        return "fixed:" + ",".join(f"{r:.3f}".rstrip("0").rstrip(".") if r else "0" for r in self.mapped_ratios)

    @property
    def same_schedule(self) -> bool:
        return len(self.reference_ratios) == len(self.mapped_ratios)

    @property
    def mapping(self) -> str:
        return ("none: the same scale schedule" if self.same_schedule else
                "by position from the end; the target's extra first scales get 0")

    def to_json(self) -> dict:
        return {"reference_model": self.reference_model, "reference_ratios": self.reference_ratios,
                "mapped_ratios": self.mapped_ratios, "fixed": self.fixed, "samples": self.samples,
                "reference_flop_reduction": self.reference_flop_reduction, "mapping": self.mapping}


def map_from_end(ratios: Sequence[float], num_scales: int) -> List[float]:
    """ratios of a K_ref-scale model -> num_scales ratios, aligned at the last scale."""
    k = len(ratios)
    return [float(ratios[k - num_scales + si]) if k - num_scales + si >= 0 else 0.0 for si in range(num_scales)]


def reference_model_for(patch_nums: Sequence[int]) -> str:
    """The installed bundled model on patch_nums' schedule, else the default bundled model."""
    from nova_deploy.model_source import BUNDLED_MODELS, DEFAULT_MODEL
    from nova_deploy.models.presets import get_preset

    same = [name for name, m in BUNDLED_MODELS.items()
            if m.available() and tuple(get_preset(name).var.patch_nums) == tuple(patch_nums)]
    return same[0] if same else DEFAULT_MODEL


@torch.no_grad()
def nova_reference_ratios(patch_nums: Sequence[int], samples: int = 20, batch: int = 10, seed: int = 0,
                          params: SamplingParams = SamplingParams(), var=None, var_name: str = "given") -> NovaRatios:
    """Run NOVA's default on the reference model for patch_nums (reference_model_for, unless `var` is
    given) with the reference sampler and return its mean per-scale ratios for patch_nums."""
    from nova_deploy.sampler import generate

    if var is None:
        from nova_deploy.model_source import resolve_models

        var_name = reference_model_for(patch_nums)
        var = resolve_models(None, None, None, model=var_name).var
    policy = resolve_policy_text("nova", var_name)[0]  # the model's measured default, where it has one
    per_image, reductions = [], []
    for start in range(0, samples, batch):
        B = min(batch, samples - start)
        labels = torch.arange(start, start + B) % var.num_classes
        res = generate(var, B, labels, g_seed=seed + start, params=params, policy=policy, want_trace=True)
        per_image += [img["scale_ratio"] for img in res.trace]
        reductions.append(res.trace[0]["flop_reduction"] * B)
    mean = torch.tensor(per_image, dtype=torch.float64).mean(0).tolist()
    mean = [round(r, 3) for r in mean]
    return NovaRatios(reference_model=var_name, reference_ratios=mean,
                      mapped_ratios=map_from_end(mean, len(patch_nums)), samples=samples,
                      reference_flop_reduction=sum(reductions) / samples)
