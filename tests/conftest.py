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

