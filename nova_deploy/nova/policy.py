"""Pruning policies: `Policy(name, config)` and the registry of the kinds behind the names.

Each kind brings its config class, its decider, the earliest scale it may prune and its text form
(`none`, `nova[:FIELD=VALUE,...]`, `nova-summary[:FIELD=VALUE,...]`, `fastvar[:FIELD=VALUE,...]`,
`fixed:R0,R1,...`),
so adding a policy means adding one kind here.
Text is parsed strictly: a name that takes no argument refuses one, and every error lists the valid
forms.
"""
from dataclasses import dataclass, fields
from typing import Optional, Sequence

from nova_deploy.errors import InvalidArgument
from nova_deploy.nova.activation import ActivationTracker
from nova_deploy.nova.config import FastVARConfig, FixedConfig, NovaConfig, NovaSummaryConfig
from nova_deploy.nova.deciders import (Decider, DenseDecider, FastVARDecider, FixedDecider, NovaDecider,
                                       NovaSummaryDecider, ScalePlan, ScaleRecord)
from nova_deploy.nova.summary import GrowthActivationTracker

__all__ = ["Decider", "ScalePlan", "ScaleRecord", "Policy", "PolicyKind", "POLICY_KINDS", "POLICY_NAMES",
           "PolicyFormError", "make_policy", "parse_policy", "valid_forms"]


class PolicyFormError(InvalidArgument):
    """Text that is no policy form; parse_policy adds the list of valid forms to the message."""


class PolicyKind:
    """One policy's parts; POLICY_KINDS holds one instance of each subclass."""
    name: str
    config_class: Optional[type] = None
    argument: Optional[str] = None  # what follows "name:" in the text form; None: the name stands alone

    @property
    def form(self) -> str:
        return self.name if self.argument is None else f"{self.name}:{self.argument}"

    def make_config(self, argument: Optional[str], **overrides):
        """The config from the text after "name:" (None if there is none) and keyword overrides."""
        self._refuse_argument(argument)
        return self.config_class(**overrides)

    def _refuse_argument(self, argument: Optional[str]) -> None:
        if argument is not None:
            raise PolicyFormError(f"policy {self.name} takes no argument, got {self.name}:{argument}")

    def format_argument(self, config) -> Optional[str]:
        """The inverse of make_config: the text after "name:" (None if the name stands alone)."""
        if config != self.config_class():
            raise InvalidArgument(f"policy {self.name} with a config other than its default has no text form")
        return None

    def decider(self, config, batch: int, patch_nums: Sequence[int], depth: int, device) -> Decider:
        raise NotImplementedError

    def earliest_pruned_scale(self, config, num_scales: int) -> Optional[int]:
        """The first scale the policy may prune (scale indices from 0), or None if it never prunes."""
        raise NotImplementedError


class DenseKind(PolicyKind):
    name = "none"

    def make_config(self, argument, **overrides):
        self._refuse_argument(argument)
        if overrides:
            raise InvalidArgument(f"policy none has no config, got {', '.join(overrides)}")
        return None

    def format_argument(self, config):
        return None

    def decider(self, config, batch, patch_nums, depth, device):
        return DenseDecider(batch=batch, patch_nums=tuple(patch_nums), depth=depth)

    def earliest_pruned_scale(self, config, num_scales):
        return None


class FieldsKind(PolicyKind):
    """A kind whose text form sets config fields: `name` or `name:FIELD=VALUE,...` (any field of its
    config; the text form of a config lists the fields that differ from the default)."""
    argument = "FIELD=VALUE,..."

    @property
    def form(self) -> str:
        return f"{self.name}[:{self.argument}]"

    def make_config(self, argument, **overrides):
        if argument == "":
            raise PolicyFormError(f"policy {self.name}: give FIELD=VALUE after the colon, or no colon")
        return self.config_class(**_fields_from_text(self.config_class, self.name, argument or ""), **overrides)

    def format_argument(self, config):
        default = self.config_class()
        changed = [f"{f.name}={_format_value(getattr(config, f.name))}" for f in fields(config)
                   if getattr(config, f.name) != getattr(default, f.name)]
        return ",".join(changed) or None


class NovaKind(FieldsKind):
    name, config_class = "nova", NovaConfig

    def decider(self, config, batch, patch_nums, depth, device):
        return NovaDecider(batch=batch, patch_nums=tuple(patch_nums), depth=depth, cfg=config,
                           tracker=ActivationTracker(batch, config, len(patch_nums), device=device))

    def earliest_pruned_scale(self, config, num_scales):
        return max(1, config.min_activation_scale)  # scale 0 has no previous scale to fill from


class NovaSummaryKind(FieldsKind):
    name, config_class = "nova-summary", NovaSummaryConfig

    def decider(self, config, batch, patch_nums, depth, device):
        return NovaSummaryDecider(batch=batch, patch_nums=tuple(patch_nums), depth=depth, cfg=config,
                                  tracker=GrowthActivationTracker(batch, config, len(patch_nums), device=device))

    def earliest_pruned_scale(self, config, num_scales):
        return max(2, config.min_activation_scale)  # the ratio law needs the growth g_(t-1), t >= 2


def _fields_from_text(config_class, policy: str, text: str) -> dict:
    """'a=1,b=x' -> {'a': 1, 'b': 'x'}, each value converted to the type of the field's default."""
    known = {f.name: f for f in fields(config_class)}
    defaults = config_class()
    out = {}
    for part in text.split(",") if text else []:
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in known:
            raise PolicyFormError(f"policy {policy}: {part!r} is not FIELD=VALUE with FIELD one of "
                                  f"{', '.join(known)}")
        key, value = key.strip(), value.strip()
        kind = type(getattr(defaults, key))
        try:
            if kind is tuple:  # a tuple of numbers is written a/b/c
                out[key] = tuple(float(v) for v in value.split("/"))
            elif kind is bool:
                if value not in ("true", "false"):
                    raise ValueError
                out[key] = value == "true"
            else:
                out[key] = kind(value)
        except ValueError:
            what = {bool: "true or false", tuple: "numbers separated by /"}.get(kind, f"a {kind.__name__}")
            raise PolicyFormError(f"policy {policy}: {key} must be {what}, got {value!r}") from None
    return out


def _format_value(value) -> str:
    if isinstance(value, tuple):
        return "/".join(_shortest(float(v)) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return _shortest(value) if isinstance(value, float) else str(value)


class FastVARKind(FieldsKind):
    name, config_class = "fastvar", FastVARConfig

    def decider(self, config, batch, patch_nums, depth, device):
        return FastVARDecider(batch=batch, patch_nums=tuple(patch_nums), depth=depth, cfg=config)

    def earliest_pruned_scale(self, config, num_scales):
        return next((si for si in range(1, num_scales) if config.ratio_at(si, num_scales) > 0), None)


class FixedKind(PolicyKind):
    name, config_class, argument = "fixed", FixedConfig, "R0,R1,..."

    def make_config(self, argument, **overrides):
        if not argument:
            raise PolicyFormError("policy fixed needs per-scale ratios, e.g. fixed:0,0,0,0,0,0.3,0.5")
        try:
            ratios = tuple(float(part) for part in argument.split(","))
        except ValueError:
            raise PolicyFormError(f"fixed ratios must be comma-separated numbers like fixed:0,0,0.2,0.4, "
                                  f"got {self.name}:{argument}") from None
        return FixedConfig(scale_ratios=ratios, **overrides)

    def format_argument(self, config):
        if config != FixedConfig(scale_ratios=config.scale_ratios):
            raise InvalidArgument("policy fixed with per-layer ratios or a non-default resampling has no text form")
        return ",".join(_shortest(r) for r in config.scale_ratios)

    def decider(self, config, batch, patch_nums, depth, device):
        return FixedDecider(batch=batch, patch_nums=tuple(patch_nums), depth=depth, cfg=config)

    def earliest_pruned_scale(self, config, num_scales):
        layer = config.layer_ratios
        return next((si for si in range(1, num_scales)
                     if config.scale_ratios[si] > 0 or (layer is not None and any(r > 0 for r in layer[si]))), None)


def _shortest(r: float) -> str:
    """'0.3' and '0' rather than '0.3' and '0.0', yet exact: the text parses back to the same float."""
    text = f"{r:g}"
    return text if float(text) == r else repr(r)


POLICY_KINDS = {kind.name: kind for kind in (DenseKind(), NovaKind(), NovaSummaryKind(), FastVARKind(), FixedKind())}
POLICY_NAMES = tuple(POLICY_KINDS)


def valid_forms(also_valid: Sequence[str] = ()) -> str:
    return ", ".join([kind.form for kind in POLICY_KINDS.values()] + list(also_valid))


def _kind(name: str) -> PolicyKind:
    kind = POLICY_KINDS.get(name)
    if kind is None:
        raise PolicyFormError(f"unknown policy {name!r}")
    return kind


@dataclass(frozen=True)
class Policy:
    """name: a key of POLICY_KINDS; config: an instance of that kind's config class (None for none)."""
    name: str = "none"
    config: object = None

    def __post_init__(self):
        kind = POLICY_KINDS.get(self.name)
        if kind is None:
            raise InvalidArgument(f"unknown policy {self.name!r}; valid: {', '.join(POLICY_NAMES)}")
        if kind.config_class is None and self.config is not None:
            raise InvalidArgument(f"policy {self.name} takes no config, got {type(self.config).__name__}")
        if kind.config_class is not None and not isinstance(self.config, kind.config_class):
            raise InvalidArgument(f"policy {self.name} needs a {kind.config_class.__name__}, "
                                  f"got {type(self.config).__name__}")

    @property
    def kind(self) -> PolicyKind:
        return POLICY_KINDS[self.name]

    def validate_for(self, num_scales: int, depth: int) -> None:
        if self.config is not None:
            self.config.validate_for(num_scales, depth)

    @property
    def upsample_mode(self) -> str:
        return getattr(self.config, "upsample_mode", "bicubic")

    def earliest_pruned_scale(self, num_scales: int) -> Optional[int]:
        return self.kind.earliest_pruned_scale(self.config, num_scales)

    def begin(self, batch: int, patch_nums: Sequence[int], depth: int, device=None) -> Decider:
        self.validate_for(len(patch_nums), depth)
        return self.kind.decider(self.config, batch, patch_nums, depth, device)

    def to_text(self) -> str:
        """The text form parse_policy reads back to an equal Policy."""
        argument = self.kind.format_argument(self.config)
        return self.name if argument is None else f"{self.name}:{argument}"


def make_policy(name: str, argument: Optional[str] = None, **overrides) -> Policy:
    """A policy by name, its config from the text argument (fixed's per-scale ratios) and overrides."""
    try:
        return Policy(name, _kind(name).make_config(argument, **overrides))
    except PolicyFormError as e:
        raise PolicyFormError(f"{e}; valid: {valid_forms()}") from None


def parse_policy(text: str, also_valid: Sequence[str] = ()) -> Policy:
    """'none' | 'nova' | 'fastvar' | 'fixed:0,0,0,0.2,0.4' (the CLI form). also_valid: named forms the
    caller resolves itself before calling (bench's fixed:nova-ref), listed in the errors."""
    name, colon, argument = text.partition(":")
    try:
        return Policy(name, _kind(name).make_config(argument if colon else None))
    except PolicyFormError as e:
        raise PolicyFormError(f"{e}; valid: {valid_forms(also_valid)}") from None
