"""Real engines of the default model, built once per test session with TensorRT-RTX ahead of time.

Three graphs of the bundled model: scale_00 and scale_01 (the transformer, sharing every block's
weights, which `--weights shared` lifts to engine inputs; scale_01 has K/V prefix inputs, dynamic
batch and prefix dims) and the decoder. Tracing them takes ~35 s on 2 cores, building ~15 s; a full
export of all 16 graphs with validation takes ~5 minutes, too long for the suite (see
bundled_graphs.py). The other graph kinds were built outside the suite (docs/ENGINES.md).
"""
import shutil

import pytest
import torch

from bundled_graphs import export_bundled_graphs

GRAPHS = ("scale_00", "scale_01", "decoder")
TARGET = "8.9"


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def rtx():
    pytest.importorskip("tensorrt_rtx")
    from nova_deploy.engines.library import load_library

    return load_library("tensorrt-rtx")


@pytest.fixture(scope="session")
def bundled_export(tmp_path_factory):
    return export_bundled_graphs(tmp_path_factory.mktemp("bundled") / "export", GRAPHS)


@pytest.fixture(scope="session")
def built(rtx, bundled_export):
    """(export dir, results of its first build): plans of GRAPHS for sm89."""
    from nova_deploy.engines.build_dir import build_engines
    from nova_deploy.engines.targets import parse_targets

    return bundled_export, build_engines(bundled_export, rtx, parse_targets(rtx, [TARGET]), graphs=GRAPHS)


@pytest.fixture
def built_copy(built, tmp_path):
    """A copy of the built export (plans included) that a test may change."""
    return shutil.copytree(built[0], tmp_path / "export")
