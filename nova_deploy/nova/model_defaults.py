"""What `--policy nova` means on a bundled model: the configuration its frontier sweep chose.

Each bundled model's directory may hold nova_default.json, written from its sweep
(`tools/nova_sweep.py --model NAME`, docs/NOVA.md section 10): the chosen policy and what it measured.
When no configuration kept quality by the rule, it holds the least aggressive configuration
measured, and `note` says in one line what that costs. A bundled model without the file runs
NovaConfig's built-in defaults and says that they are unmeasured there; any other model runs them.
"""
import json
from dataclasses import dataclass
from typing import Optional, Tuple

from nova_deploy.errors import InvalidArgument
from nova_deploy.nova.policy import Policy, parse_policy

DEFAULT_FILE = "nova_default.json"
NOVA = "nova"


@dataclass(frozen=True)
class NovaDefault:
    model: str
    policy: Policy
    passes_rule: bool
    flop_reduction: float
    fid_feat: float
    dense_fid_feat: float
    classifier_accuracy: float
    dense_classifier_accuracy: float
    sweep: str  # where the measurement is

    @property
    def note(self) -> str:
        """One line on what the default costs; empty when it kept quality by the rule."""
        if self.passes_rule:
            return ""
        return (f"policy nova on {self.model}: no configuration kept quality in its sweep ({self.sweep}), so this is "
                f"the least aggressive one measured, {self.policy.to_text()}: {self.flop_reduction:.2f}x fewer "
                f"transformer FLOPs for FID_feat {self.fid_feat:.2f} against dense {self.dense_fid_feat:.2f} and "
                f"accuracy {100 * self.classifier_accuracy:.1f} % against {100 * self.dense_classifier_accuracy:.1f} %")


def load_nova_default(model: str) -> Optional[NovaDefault]:
    """The bundled model's measured default, or None where it has none."""
    from nova_deploy.model_source import BUNDLED_MODELS

    bundled = BUNDLED_MODELS.get(model)
    path = None if bundled is None else bundled.directory / DEFAULT_FILE
    if path is None or not path.is_file():
        return None
    d = json.loads(path.read_text())
    try:
        return NovaDefault(model=model, policy=parse_policy(d["policy"]), passes_rule=bool(d["passes_rule"]),
                           flop_reduction=float(d["flop_reduction"]), fid_feat=float(d["fid_feat"]),
                           dense_fid_feat=float(d["dense_fid_feat"]),
                           classifier_accuracy=float(d["classifier_accuracy"]),
                           dense_classifier_accuracy=float(d["dense_classifier_accuracy"]), sweep=str(d["sweep"]))
    except (KeyError, TypeError, ValueError, InvalidArgument) as e:
        raise InvalidArgument(f"{path} is not a NOVA default written by tools/nova_sweep.py: {e}") from None


def resolve_policy_text(text: str, model: Optional[str]) -> Tuple[Policy, str]:
    """(policy, one-line note or ""): `nova` on a bundled model with a measured default becomes that
    default; every other text parses as it is."""
    if text != NOVA or model is None:
        return parse_policy(text), ""
    default = load_nova_default(model)
    if default is None:
        return parse_policy(text), (f"policy nova on {model}: its quality at speed has not been swept yet "
                                    f"(tools/nova_sweep.py --model {model}); running NOVA's built-in configuration")
    return default.policy, default.note
