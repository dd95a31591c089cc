"""`validate` compares the export with the model, not only with its own manifest: a changed
codebook, config or weight is found even when its hash was rewritten to match."""
import pytest

from cli_runner import run_cli
from export_sources import one_thread  # noqa: F401  (autouse: one CPU thread)
from export_tampering import copy_export, edit_manifest, flip_weight_byte, negate_codebook, rehash
from nova_deploy.artifacts.names import CODEBOOK, WEIGHTS_FILE
from nova_deploy.export.manifest import open_export
from nova_deploy.export.model_check import export_mismatches
from nova_deploy.model_source import resolve_models

pytestmark = pytest.mark.slow  # needs the session's small export


@pytest.fixture(scope="module")
def models(small_export):
    source = small_export.manifest["model"]["source"]
    return resolve_models(source["var"], source["vae"], None)


@pytest.fixture
def export_copy(small_export, tmp_path):
    return copy_export(small_export.out_dir, tmp_path / "export")


def mismatches(path, models):
    export = open_export(path)  # the manifest's own hashes all match: only the model can tell
    return export_mismatches(export, export.spec, models.var, models.vae)


def test_the_export_matches_its_model(small_export, models):
    assert mismatches(small_export.out_dir, models) == []


def test_a_negated_codebook_with_its_hash_rewritten_is_found(export_copy, models):
    negate_codebook(export_copy)
    rehash(export_copy, CODEBOOK)
    assert mismatches(export_copy, models) == [
        (CODEBOOK, "differs from the model's quantizer embedding (the runtime embeds sampled tokens with it: "
                   "images would differ)")]


def test_an_edited_class_count_is_found(export_copy, models):
    edit_manifest(export_copy, lambda m: m["model"]["var_config"].update(num_classes=500))
    assert mismatches(export_copy, models) == [("model.var_config.num_classes", "500 in the manifest, 10 in the model")]


def test_a_changed_weight_with_its_hash_rewritten_is_found(export_copy, models):
    flip_weight_byte(export_copy, at=2000)  # inside the first stored tensor, however small the change
    rehash(export_copy, WEIGHTS_FILE)
    [(what, message)] = mismatches(export_copy, models)
    assert what == WEIGHTS_FILE and message.startswith("1 of ") and "equal no tensor of the model at fp32" in message


def test_validate_command_refuses_each_tampering(export_copy):
    """End to end, one validation run: codebook negated and class count edited (hashes rewritten)."""
    negate_codebook(export_copy)
    rehash(export_copy, CODEBOOK)
    edit_manifest(export_copy, lambda m: m["model"]["var_config"].update(num_classes=500))
    r = run_cli("validate", export_copy)
    assert r.exit_code == 2, r.output
    assert "validation failed" in r.output
    assert "codebook.npy: differs from the model's quantizer embedding" in r.output
    assert "model.var_config.num_classes: 500 in the manifest, 10 in the model" in r.output


def test_validate_refuses_paths_outside_the_export(export_copy, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x" * 4321)
    edit_manifest(export_copy, lambda m: m["files"].update({"../../etc/passwd": {"sha256": "0" * 64, "bytes": 1}}))
    r = run_cli("validate", export_copy)
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1].startswith("error: ")
    assert "'../../etc/passwd' is not a file name inside the export directory" in r.output
    edit_manifest(export_copy, lambda m: m["files"].pop("../../etc/passwd"))
    (export_copy / "notes.bin").symlink_to(outside)
    edit_manifest(export_copy, lambda m: m["files"].update({"notes.bin": {"sha256": "0" * 64, "bytes": 1}}))
    r = run_cli("validate", export_copy)
    assert r.exit_code == 2 and "notes.bin: leads outside the export directory" in r.output
    assert "4321" not in r.output


def test_validate_with_a_pinned_digest(small_export, export_copy):
    r = run_cli("validate", export_copy, "--expect-sha256", "0" * 64)
    assert r.exit_code == 2 and "not the export you pinned" in r.output
    assert len(r.output.strip().splitlines()) == 1
