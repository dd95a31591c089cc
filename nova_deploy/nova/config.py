"""Configurations of the three pruning policies: NOVA (entropy-driven), FastVAR (fixed late-scale
ratios, the baseline NOVA is compared with) and Fixed (explicit ratios, for ablations).

Each validates its own fields on construction; `validate_for(num_scales, depth)` checks what only
the model can tell (how many scales and layers there are). Scale indices may be negative and then
count from the end, as in Python indexing.
"""
import math
import numbers
from dataclasses import dataclass
from typing import Literal, Optional, Tuple

from nova_deploy.errors import require
from nova_deploy.resample import ResampleMode, check_mode

IMPORTANCES = ("entropy", "distance")  # NovaConfig.importance


def check_ratio(name: str, value) -> None:
    """A pruning ratio is the fraction of tokens a layer skips: in [0, 1) so one token always remains."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 <= value < 1.0
    require(ok, f"{name} must be in [0, 1), got {value!r}")


def _check_int(name: str, value, low: Optional[int] = None) -> None:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and (low is None or value >= low)
    require(ok, f"{name} must be an integer{'' if low is None else f' >= {low}'}, got {value!r}")


def resolve_scale_index(name: str, si: int, num_scales: int) -> int:
    """Scale index in [-num_scales, num_scales) -> index in [0, num_scales)."""
    require(-num_scales <= si < num_scales,
            f"{name}={si} is beyond the model's {num_scales} scales (valid: {-num_scales}..{num_scales - 1})")
    return si + num_scales if si < 0 else si


def _check_importance(value) -> None:
    require(value in IMPORTANCES, f"importance must be one of {', '.join(IMPORTANCES)}, got {value!r}")


def _activation_bounds(cfg, num_scales: int) -> Tuple[int, int]:
    """(min_activation_scale, fallback scale) of a NOVA config resolved for num_scales scales."""
    fallback = resolve_scale_index("fallback_activation_scale", cfg.fallback_activation_scale, num_scales)
    require(cfg.min_activation_scale < num_scales,
            f"min_activation_scale={cfg.min_activation_scale} is beyond the model's {num_scales} scales "
            f"(valid: 0..{num_scales - 1})")
    require(cfg.min_activation_scale <= fallback,
            f"min_activation_scale={cfg.min_activation_scale} must be <= the fallback activation scale "
            f"({cfg.fallback_activation_scale} -> {fallback} for {num_scales} scales)")
    return cfg.min_activation_scale, fallback


@dataclass(frozen=True)
class NovaConfig:
    # Earliest scale index at which pruning may start: the first scales hold a handful of tokens
    # that fix the global layout, so pruning them saves nothing and risks the composition.
    min_activation_scale: int = 2
    # Scale at which pruning starts when the entropy curve showed no inflection before it (the
    # curve of a sample can keep accelerating); negative counts from the end.
    fallback_activation_scale: int = -2
    # Scale pruning ratio at the activation scale (fraction of tokens each layer skips, on average).
    base_ratio: float = 0.3
    # Added to the scale ratio per scale after activation: later scales add finer detail that
    # the cached residuals approximate better.
    growth_per_scale: float = 0.1
    # Multiplies the growth of the mean token entropy since activation (negative growth counts as 0):
    # rising entropy means the scale adds fine, near-random detail, where the cached residuals that
    # pruned tokens receive are good enough, so such a sample prunes more.
    entropy_gain: float = 0.5
    # Cap of every scale and layer ratio: some computed tokens must remain to refresh the caches.
    r_max: float = 0.75
    # Spread of the per-layer ratios around the scale ratio: 0 gives every layer the scale ratio,
    # 1 lets them range over [0, 2 r] (layers that change the residual stream less prune more).
    layer_spread: float = 0.5
    # That many first layers are never pruned (they build the features the others refine). The
    # scale ratio is then the mean over the remaining, prunable layers only, so it stays the
    # fraction of work skipped where pruning applies.
    protect_first_layers: int = 0
    # How prior-scale importance maps and residual caches are upsampled to the current grid.
    upsample_mode: ResampleMode = "bicubic"
    # Which tokens a layer keeps: "entropy" = the highest prior-scale token entropy (NOVA);
    # "distance" = FastVAR's ranking (farthest from the mean input token), kept for the ablation
    # that separates NOVA's schedule from its token ranking (docs/NOVA.md).
    importance: Literal["entropy", "distance"] = "entropy"

    def __post_init__(self):
        _check_int("min_activation_scale", self.min_activation_scale, low=0)
        _check_importance(self.importance)
        _check_int("fallback_activation_scale", self.fallback_activation_scale)
        check_ratio("base_ratio", self.base_ratio)
        check_ratio("r_max", self.r_max)
        require(self.r_max >= self.base_ratio, f"r_max ({self.r_max}) must be >= base_ratio ({self.base_ratio})")
        for name in ("growth_per_scale", "entropy_gain"):
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0
            require(ok, f"{name} must be a finite number >= 0, got {value!r}")
        ok = isinstance(self.layer_spread, numbers.Real) and 0.0 <= self.layer_spread <= 1.0
        require(ok, f"layer_spread must be in [0, 1], got {self.layer_spread!r}")
        _check_int("protect_first_layers", self.protect_first_layers, low=0)
        check_mode(self.upsample_mode, "upsample_mode")

    def activation_bounds(self, num_scales: int) -> Tuple[int, int]:
        """(min_activation_scale, fallback scale) resolved for a model with num_scales scales."""
        return _activation_bounds(self, num_scales)

    def validate_for(self, num_scales: int, depth: int) -> None:
        self.activation_bounds(num_scales)
        require(self.protect_first_layers < depth,
                f"protect_first_layers={self.protect_first_layers} must be < depth ({depth}): "
                f"at least one layer must remain prunable")


RATIO_READINGS = ("keep", "prune")  # NovaSummaryConfig.ratio_reading


@dataclass(frozen=True)
class NovaSummaryConfig:
    """NOVA as the third-party summary describes it (nova/summary.py has the formulas)."""
    # Earliest scale pruning may start at, and the scale it starts at when no t* was found before
    # it (negative counts from the end); as NovaConfig's.
    min_activation_scale: int = 2
    fallback_activation_scale: int = -2
    # m: the baseline is the mean growth g_1..g_m of the first scales.
    baseline_growths: int = 1
    # rho and lambda of Ratio_t = sigmoid(rho (t* + 1) / t + growth_sign * lambda * tanh(g)).
    rho: float = 1.0
    lam: float = 1.0
    growth_sign: int = -1  # -1: the summary's formula; +1: its prose
    ratio_reading: Literal["keep", "prune"] = "keep"  # what Ratio_t is the fraction of
    # Cap of every scale and layer ratio: some computed tokens must remain to refresh the caches.
    r_max: float = 0.75
    layer_linkage: bool = True
    importance: Literal["entropy", "distance"] = "entropy"
    upsample_mode: ResampleMode = "bicubic"

    def __post_init__(self):
        _check_int("min_activation_scale", self.min_activation_scale, low=0)
        _check_int("fallback_activation_scale", self.fallback_activation_scale)
        _check_int("baseline_growths", self.baseline_growths, low=1)
        for name in ("rho", "lam"):
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            require(ok, f"{name} must be a finite number, got {value!r}")
        require(self.growth_sign in (-1, 1) and not isinstance(self.growth_sign, bool),
                f"growth_sign must be -1 or 1, got {self.growth_sign!r}")
        require(self.ratio_reading in RATIO_READINGS,
                f"ratio_reading must be one of {', '.join(RATIO_READINGS)}, got {self.ratio_reading!r}")
        check_ratio("r_max", self.r_max)
        require(isinstance(self.layer_linkage, bool), f"layer_linkage must be true or false, got {self.layer_linkage!r}")
        _check_importance(self.importance)
        check_mode(self.upsample_mode, "upsample_mode")

    def activation_bounds(self, num_scales: int) -> Tuple[int, int]:
        return _activation_bounds(self, num_scales)

    def validate_for(self, num_scales: int, depth: int) -> None:
        self.activation_bounds(num_scales)


@dataclass(frozen=True)
class FastVARConfig:
    # First pruned scale (negative counts from the end); FastVAR prunes only the last, largest scales.
    start_scale: int = -2
    # Pruning ratio of every layer at each scale from start_scale on, one per pruned scale.
    ratios: Tuple[float, ...] = (0.4, 0.5)
    # How the cached previous-scale output is upsampled to fill the pruned tokens.
    upsample_mode: ResampleMode = "bicubic"

    def __post_init__(self):
        _check_int("start_scale", self.start_scale)
        object.__setattr__(self, "ratios", tuple(self.ratios))  # frozen and hashable even if given a list
        for i, r in enumerate(self.ratios):
            check_ratio(f"ratios[{i}]", r)
        check_mode(self.upsample_mode, "upsample_mode")

    def validate_for(self, num_scales: int, depth: int) -> None:
        start = resolve_scale_index("start_scale", self.start_scale, num_scales)
        require(len(self.ratios) == num_scales - start,
                f"ratios has {len(self.ratios)} entries but start_scale={self.start_scale} prunes "
                f"{num_scales - start} scales (scales {start}..{num_scales - 1})")

    def ratio_at(self, si: int, num_scales: int) -> float:
        start = resolve_scale_index("start_scale", self.start_scale, num_scales)
        return self.ratios[si - start] if si >= start else 0.0


@dataclass(frozen=True)
class FixedConfig:
    # Pruning ratio of each scale, one per scale; every layer gets it unless layer_ratios is given.
    scale_ratios: Tuple[float, ...]
    # Optional per-scale, per-layer ratios (num_scales x depth); when given they are used as they
    # are and scale_ratios only documents the intended mean.
    layer_ratios: Optional[Tuple[Tuple[float, ...], ...]] = None
    upsample_mode: ResampleMode = "bicubic"

    def __post_init__(self):
        object.__setattr__(self, "scale_ratios", tuple(self.scale_ratios))
        for si, r in enumerate(self.scale_ratios):
            check_ratio(f"scale_ratios[{si}]", r)
        if self.layer_ratios is not None:
            object.__setattr__(self, "layer_ratios", tuple(tuple(row) for row in self.layer_ratios))
            for si, row in enumerate(self.layer_ratios):
                for layer, r in enumerate(row):
                    check_ratio(f"layer_ratios[{si}][{layer}]", r)
        check_mode(self.upsample_mode, "upsample_mode")

    def validate_for(self, num_scales: int, depth: int) -> None:
        require(len(self.scale_ratios) == num_scales,
                f"scale_ratios has {len(self.scale_ratios)} entries; the model has {num_scales} scales")
        if self.layer_ratios is None:
            return
        require(len(self.layer_ratios) == num_scales,
                f"layer_ratios has {len(self.layer_ratios)} rows; the model has {num_scales} scales")
        for si, row in enumerate(self.layer_ratios):
            require(len(row) == depth, f"layer_ratios[{si}] has {len(row)} entries; the model has {depth} layers")
