"""Models for the export tests, as ModelSources (what the exporter takes), and one CPU thread."""
import pytest
import torch

from model_factories import randomised_pair
from nova_deploy.model_source import ModelSource
from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import get_preset


@pytest.fixture(autouse=True)
def one_thread():
    """Import into a test module to run its tests on one thread (the machine has 2 cores, shared)."""
    torch.set_num_threads(1)


def preset_source(name: str, seed: int = 0) -> ModelSource:
    """What `--preset name` resolves to: build_pair(get_preset(name), seed)."""
    var, vae = build_pair(get_preset(name), seed=seed)
    return ModelSource(var, vae, f"preset {name} (random weights, seed {seed})", preset=name)


def randomised_source(name: str) -> ModelSource:
    """The preset with every VAR parameter random (model_factories.randomised_pair): with the official
    init's ~1e-5 AdaLN gammas each block barely changes the residual stream, so neither the
    validation tolerances nor pruning (computed vs filled tokens) would be exercised."""
    var, vae = randomised_pair(name)
    return ModelSource(var, vae, f"preset {name}, every VAR parameter random (std 0.2)", preset=name)


def randomised_checkpoint_source(name: str, directory) -> ModelSource:
    """randomised_source written to safetensors and loaded back, so that an export's manifest names
    files the torch runtime backend can reload (a preset source would rebuild the official init)."""
    from pathlib import Path

    from nova_deploy.checkpoint import save_safetensors
    from nova_deploy.export.model_check import configs_of
    from nova_deploy.model_source import resolve_models

    directory = Path(directory)
    var, vae = randomised_pair(name)
    var_cfg, vae_cfg = configs_of(var, vae)
    save_safetensors(var, var_cfg, "var", directory / "var.safetensors")
    save_safetensors(vae, vae_cfg, "vqvae", directory / "vqvae.safetensors")
    return resolve_models(str(directory / "var.safetensors"), str(directory / "vqvae.safetensors"), None)
