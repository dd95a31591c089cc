"""build-engines checks the bytes it builds from against the manifest before building anything,
and refuses an export whose manifest is not the digest the caller pinned."""
import pytest

from cli_runner import run_cli
from export_tampering import copy_export, flip_weight_byte, manifest_sha256
from nova_deploy.artifacts.names import WEIGHTS_FILE

pytestmark = pytest.mark.slow  # needs the session's small export


@pytest.fixture
def export_copy(small_export, tmp_path):
    pytest.importorskip("tensorrt_rtx")
    return copy_export(small_export.out_dir, tmp_path / "export")


def build(path, *extra):
    return run_cli("build-engines", path, "--library", "tensorrt-rtx", "--compute-capability", "8.9",
                   "--graph", "decoder", *extra)


def test_weights_changed_after_export_are_refused_before_any_build(export_copy):
    flip_weight_byte(export_copy)
    r = build(export_copy)
    assert r.exit_code == 2, r.output
    assert f"error: {export_copy / WEIGHTS_FILE}: sha256 differs from the manifest" in r.output
    assert "export again" in r.output
    assert not (export_copy / "engines").exists()


def test_a_pinned_digest_that_differs_is_refused(export_copy):
    r = build(export_copy, "--expect-sha256", "0" * 64)
    assert r.exit_code == 2 and "not the export you pinned" in r.output, r.output
    assert f"sha256 {manifest_sha256(export_copy)}" in r.output
    assert not (export_copy / "engines").exists()
