import json
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO.parent / "shared" / "golden"


# CI has 2 cores; more threads than that only adds contention. Under pytest-xdist (pyproject's
# addopts start 2 workers) each worker already has a core of its own.
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(THREADS)


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



@pytest.fixture(scope="session")
def small_export(tmp_path_factory):
    """One validated export shared by the export, runtime and engine tests (tracing is the slow part):
    the `small` preset (7 scales, prunable from scale 2) with every VAR parameter random, saved as
    safetensors first so that the torch backend can reload it; max batch 2. Tests must not modify it
    (copy it first)."""
    from export_sources import randomised_checkpoint_source
    from nova_deploy.export.exporter import export_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("small_export")
        src = randomised_checkpoint_source("small", root)
        return export_model(src, root / "export", max_batch=2)
    finally:
        torch.set_num_threads(threads)


# Session fixtures that take a minute or more to build. pyproject's addopts run the suite on 2
# pytest-xdist workers with --dist loadgroup: every test using one of these joins that fixture's
# group, so it is built once, and every other test stays with its module, so module fixtures (one
# export each) are built once too.
SHARED_EXPENSIVE_FIXTURES = ("small_export", "bundled_export")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the marks into scheduling groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        group = next((f for f in SHARED_EXPENSIVE_FIXTURES if f in item.fixturenames), item.nodeid.split("::")[0])
        item.add_marker(pytest.mark.xdist_group(group))
