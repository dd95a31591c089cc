"""Fixtures of the serving tests: the bundled model's full export (once per session), the
tritonserver environment (cached venv of the system python3), a server over a written repository."""
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bundled_full_export(tmp_path_factory):
    """Every graph of the bundled reference model, fp32, max batch 8, validated (2-5 minutes on 2 cores)."""
    from nova_deploy.export.exporter import export_model
    from nova_deploy.model_source import bundled_model_available, resolve_models

    if not bundled_model_available():
        pytest.skip("no bundled reference model in nova_deploy/assets")
    return export_model(resolve_models(None, None, None), tmp_path_factory.mktemp("bundled_full") / "export",
                        max_batch=8, threads=torch.get_num_threads()).out_dir


@pytest.fixture(scope="session")
def triton_install():
    """The nvidia-pytriton tritonserver with the project's dependencies; skips, saying why, only
    where this platform cannot run it."""
    from nova_deploy.serving.local_server import PlatformUnsupported, prepare_install, project_requirements

    try:
        return prepare_install(project_requirements(REPO))
    except PlatformUnsupported as e:
        pytest.skip(f"cannot run tritonserver here: {e}")
