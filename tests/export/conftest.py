"""Shared exports for the export tests: each is made once per session (tracing is slow on 2 cores)."""
import pytest
import torch

from nova_deploy.model_source import ModelSource
from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import get_preset


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def preset_source(name: str, seed: int = 0) -> ModelSource:
    """What `--preset name` resolves to: build_pair(get_preset(name), seed)."""
    var, vae = build_pair(get_preset(name), seed=seed)
    return ModelSource(var, vae, f"preset {name} (random weights, seed {seed})", preset=name)


def stressed_source(name: str, seed: int = 0) -> ModelSource:
    """build_pair's model with every VAR parameter redrawn (normal, std 0.2). The official init
    makes AdaLN gammas ~1e-5, so each block changes the residual stream by ~1e-5 and neither the
    validation tolerances nor pruning (kept vs filled tokens) would be exercised."""
    src = preset_source(name, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in src.var.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    src.description = f"preset {name} (random weights, seed {seed}, every VAR parameter redrawn with std 0.2)"
    return src


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    from nova_deploy.export.exporter import export_model

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny") / "export"
    return export_model(preset_source("tiny"), out, max_batch=2)


@pytest.fixture(scope="session")
def small_export(tmp_path_factory):
    from nova_deploy.export.exporter import export_model

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("small") / "export"
    return export_model(stressed_source("small"), out, max_batch=2)
