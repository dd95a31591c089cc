import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO.parent / "shared" / "golden"


@pytest.fixture(autouse=True)
def _few_threads():
    # CI has 2 cores; more threads than that only adds contention
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not (GOLDEN / "var_official_tiny.json").is_file():
        pytest.skip(f"official parity vectors not found at {GOLDEN}")
    return GOLDEN


@pytest.fixture(scope="session")
def golden_meta(golden_dir):
    return json.loads((golden_dir / "var_official_tiny.json").read_text())


@pytest.fixture(scope="session")
def golden_models(golden_dir):
    from nova_deploy.checkpoint import load_models

    return load_models(golden_dir / "var_official_tiny.var.pth", golden_dir / "var_official_tiny.vae.pth")


def randomised_pair(preset_name: str = "small", shared_aln: bool = False, std: float = 0.2, seed: int = 3):
    """A model pair whose every VAR parameter is random (the official init makes AdaLN gammas ~1e-5 and
    the head ~0, which would hide mistakes in the blocks and make every sample the same)."""
    from nova_deploy.models.build import build_pair
    from nova_deploy.models.presets import get_preset, with_overrides

    var, vae = build_pair(with_overrides(get_preset(preset_name), shared_aln=shared_aln), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in var.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return var, vae
