"""Where the models of a command come from: a checkpoint pair, a preset with random weights,
or one of the reference models bundled with the package (the default: DEFAULT_MODEL)."""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from nova_deploy.checkpoint import load_models
from nova_deploy.errors import InvalidArgument
from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import get_preset
from nova_deploy.models.var import VAR
from nova_deploy.models.vqvae import VQVAE

ASSETS = Path(__file__).parent / "assets"
FALLBACK_PRESET = "small"  # used only while no trained model is bundled


@dataclass(frozen=True)
class BundledModel:
    name: str  # also its preset's name
    directory: Path  # var.safetensors, vqvae.safetensors and MODEL_CARD.md

    @property
    def var_path(self) -> Path:
        return self.directory / "var.safetensors"

    @property
    def vae_path(self) -> Path:
        return self.directory / "vqvae.safetensors"

    def available(self) -> bool:
        return self.var_path.is_file() and self.vae_path.is_file()


BUNDLED_MODELS: Dict[str, BundledModel] = {m.name: m for m in [
    BundledModel("nova-ref", ASSETS),  # 7 scales up to 8x8
    BundledModel("nova-ref-16", ASSETS / "nova-ref-16"),  # the official 10 scales up to 16x16
]}
DEFAULT_MODEL = "nova-ref"
BUNDLED_VAR, BUNDLED_VAE = BUNDLED_MODELS[DEFAULT_MODEL].var_path, BUNDLED_MODELS[DEFAULT_MODEL].vae_path


def bundled_model(name: str) -> BundledModel:
    """The bundled model `name`, refused with the valid names if unknown or not installed."""
    if name not in BUNDLED_MODELS:
        raise InvalidArgument(f"unknown model {name!r}; valid: {', '.join(BUNDLED_MODELS)}")
    model = BUNDLED_MODELS[name]
    if not model.available():
        raise InvalidArgument(f"model {name} is not installed: {model.var_path} or {model.vae_path} is missing "
                              f"(installed: {', '.join(m.name for m in BUNDLED_MODELS.values() if m.available()) or 'none'})")
    return model


@dataclass
class ModelSource:
    var: VAR
    vae: VQVAE
    description: str  # one line for the user: what was loaded
    var_path: Optional[Path] = None
    vae_path: Optional[Path] = None
    preset: Optional[str] = None
    bundled: Optional[str] = None  # the bundled model's name, when it is one


def bundled_model_available(name: str = DEFAULT_MODEL) -> bool:
    return BUNDLED_MODELS[name].available()


def resolve_models(checkpoint: Optional[str], vae: Optional[str], preset: Optional[str],
                   device: str = "cpu", random_seed: int = 0, model: Optional[str] = None) -> ModelSource:
    """model: a bundled model's name; it excludes the other three, which select other models."""
    if model is not None:
        if checkpoint is not None or vae is not None or preset is not None:
            raise InvalidArgument("--model selects a bundled trained model; --checkpoint/--vae/--preset select "
                                  "another model: give one or the other")
        return _bundled(bundled_model(model), device)
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
        return _bundled(BUNDLED_MODELS[DEFAULT_MODEL], device)
    var_m, vae_m = build_pair(get_preset(FALLBACK_PRESET), seed=random_seed)
    return ModelSource(var_m.to(device), vae_m.to(device),
                       f"no trained model is bundled yet: preset {FALLBACK_PRESET} with RANDOM weights",
                       preset=FALLBACK_PRESET)


def _bundled(model: BundledModel, device: str) -> ModelSource:
    var_m, vae_m = load_models(model.var_path, model.vae_path, expect_var=get_preset(model.name).var, device=device)
    return ModelSource(var_m, vae_m, f"bundled reference model {model.name}", model.var_path, model.vae_path,
                       model.name, bundled=model.name)
