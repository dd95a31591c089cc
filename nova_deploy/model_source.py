"""Where the models of a command come from: a checkpoint pair, a preset with random weights,
or the reference model bundled with the package (the default)."""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from nova_deploy.checkpoint import load_models
from nova_deploy.errors import InvalidArgument
from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import DEFAULT_PRESET, get_preset
from nova_deploy.models.var import VAR
from nova_deploy.models.vqvae import VQVAE

ASSETS = Path(__file__).parent / "assets"
BUNDLED_VAR, BUNDLED_VAE = ASSETS / "var.safetensors", ASSETS / "vqvae.safetensors"
FALLBACK_PRESET = "small"  # used only while no trained model is bundled


@dataclass
class ModelSource:
    var: VAR
    vae: VQVAE
    description: str  # one line for the user: what was loaded
    var_path: Optional[Path] = None
    vae_path: Optional[Path] = None
    preset: Optional[str] = None


def bundled_model_available() -> bool:
    return BUNDLED_VAR.is_file() and BUNDLED_VAE.is_file()


def resolve_models(checkpoint: Optional[str], vae: Optional[str], preset: Optional[str],
                   device: str = "cpu", random_seed: int = 0) -> ModelSource:
    if (checkpoint is None) != (vae is None):
        raise InvalidArgument("--checkpoint and --vae go together: give both (VAR and VQVAE files) or neither")
    if checkpoint is not None:
        expect = get_preset(preset).var if preset else None
        var_m, vae_m = load_models(checkpoint, vae, expect_var=expect, device=device)
        return ModelSource(var_m, vae_m, f"checkpoint {checkpoint} + {vae}", Path(checkpoint), Path(vae), preset)
    if preset is not None:
        var_m, vae_m = build_pair(get_preset(preset), seed=random_seed)
        return ModelSource(var_m.to(device), vae_m.to(device),
                           f"preset {preset} with RANDOM weights (seed {random_seed}): images will be noise",
                           preset=preset)
    if bundled_model_available():
        var_m, vae_m = load_models(BUNDLED_VAR, BUNDLED_VAE, device=device)
        return ModelSource(var_m, vae_m, f"bundled reference model {DEFAULT_PRESET}", BUNDLED_VAR, BUNDLED_VAE,
                           DEFAULT_PRESET)
    var_m, vae_m = build_pair(get_preset(FALLBACK_PRESET), seed=random_seed)
    return ModelSource(var_m.to(device), vae_m.to(device),
                       f"no trained model is bundled yet: preset {FALLBACK_PRESET} with RANDOM weights",
                       preset=FALLBACK_PRESET)
