"""The export loader on small hand-made directories: schema, paths kept inside the directory,
sizes and hashes checked before use, the expected manifest digest. No export needed."""
import copy
import hashlib
import json
import os

import numpy as np
import pytest

from nova_deploy.artifacts.export_dir import ExportDir
from nova_deploy.artifacts.hashing import sha256_file
from nova_deploy.artifacts.manifest import FORMAT, FORMAT_VERSION, write_manifest
from nova_deploy.artifacts.names import CODEBOOK, MANIFEST, WEIGHTS_FILE
from nova_deploy.errors import InvalidArgument

V, CV = 16, 4


def _entry(path):
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def _base_manifest(d) -> dict:
    files = {name: _entry(d / name) for name in ("cond.onnx", WEIGHTS_FILE, CODEBOOK)}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "valid": True,
            "model": {"fingerprint": "f" * 64, "source": {"kind": "preset", "preset": "tiny"},
                      "description": "hand-made", "var_config": {"num_classes": 10},
                      "vqvae_config": {"vocab_size": V, "z_channels": CV}},
            "precision": "fp32", "max_batch": 2, "opset": 18, "prune_range": {"first_scale": 2},
            "graphs": {"cond": {"file": "cond.onnx"}}, "files": files}


@pytest.fixture
def export(tmp_path):
    """(directory, its manifest): three small files listed with their hashes."""
    d = tmp_path / "export"
    d.mkdir()
    (d / "cond.onnx").write_bytes(b"graph bytes")
    (d / WEIGHTS_FILE).write_bytes(bytes(range(256)) * 4)
    np.save(d / CODEBOOK, np.arange(V * CV, dtype=np.float32).reshape(V, CV))
    manifest = _base_manifest(d)
    write_manifest(d, manifest)
    return d, manifest


@pytest.fixture
def outside(tmp_path):
    """A file outside the export, of a size no export file has."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(b"s" * 12345)
    return secret


def _rewrite(d, manifest):
    write_manifest(d, manifest)


def test_an_intact_export_opens_and_every_file_is_checked(export):
    d, manifest = export
    e = ExportDir.open(d)
    assert e.manifest == manifest
    assert e.manifest_sha256 == hashlib.sha256((d / MANIFEST).read_bytes()).hexdigest()
    assert e.verified == {n: v["sha256"] for n, v in manifest["files"].items()}
    assert e.codebook.shape == (V, CV) and e.codebook_VC.dtype.is_floating_point
    assert e.file(WEIGHTS_FILE) == (d / WEIGHTS_FILE).resolve()


def test_what_is_not_an_export_is_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="no such export directory"):
        ExportDir.open(tmp_path / "missing")
    with pytest.raises(InvalidArgument, match="not an export directory"):
        ExportDir.open(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(InvalidArgument, match="unreadable manifest"):
        ExportDir.open(tmp_path)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "sub/weights.bin", "a\\..\\b"])
def test_a_listed_path_that_is_not_a_plain_file_name_is_refused_before_anything_is_read(export, name):
    d, manifest = export
    manifest["files"][name] = {"sha256": "0" * 64, "bytes": 1}
    _rewrite(d, manifest)
    with pytest.raises(InvalidArgument) as e:
        ExportDir.open(d)
    assert f"listed file {name!r} is not a file name inside the export directory" in str(e.value)


def test_a_graph_file_outside_the_directory_is_refused(export):
    d, manifest = export
    manifest["graphs"]["cond"]["file"] = "../../etc/passwd"
    manifest["files"]["../../etc/passwd"] = manifest["files"].pop("cond.onnx")
    _rewrite(d, manifest)
    with pytest.raises(InvalidArgument, match="'../../etc/passwd' is not a file name inside"):
        ExportDir.open(d)


@pytest.mark.parametrize("name", ["extra.bin", WEIGHTS_FILE])
def test_a_symlink_leading_out_is_refused_without_reading_or_sizing_its_target(export, outside, name):
    d, manifest = export
    if (d / name).exists():
        (d / name).unlink()
    os.symlink(outside, d / name)
    manifest["files"][name] = {"sha256": "0" * 64, "bytes": 1}
    _rewrite(d, manifest)
    with pytest.raises(InvalidArgument) as e:
        ExportDir.open(d)
    message = str(e.value)
    assert f"{d / name}: leads outside the export directory" in message
    assert "12345" not in message and "secret" not in message  # nothing of the outside file shown
    with pytest.raises(InvalidArgument, match="leads outside the export directory"):
        ExportDir.open(d, check_files=False)  # whether or not the reader checks the files it reads


def test_a_symlink_to_a_file_inside_is_followed(export):
    d, manifest = export
    (d / "cond.real").write_bytes((d / "cond.onnx").read_bytes())
    (d / "cond.onnx").unlink()
    os.symlink("cond.real", d / "cond.onnx")
    assert ExportDir.open(d).file("cond.onnx") == (d / "cond.real").resolve()
    (d / "store").mkdir()  # also into a folder of the export
    os.replace(d / "cond.real", d / "store" / "cond.real")
    (d / "cond.onnx").unlink()
    os.symlink("store/cond.real", d / "cond.onnx")
    assert ExportDir.open(d).file("cond.onnx") == (d / "store" / "cond.real").resolve()


def test_a_manifest_symlinked_from_outside_is_refused(export, tmp_path):
    d, _ = export
    elsewhere = tmp_path / "elsewhere.json"
    os.replace(d / MANIFEST, elsewhere)
    os.symlink(elsewhere, d / MANIFEST)
    with pytest.raises(InvalidArgument, match="manifest.json: leads outside the export directory"):
        ExportDir.open(d)


def _without(*keys):
    """A change that deletes manifest[keys[0]]...[keys[-1]]."""
    def change(m):
        for k in keys[:-1]:
            m = m[k]
        del m[keys[-1]]
    return change


def _with(*keys, value):
    """A change that sets manifest[keys[0]]...[keys[-1]] = value."""
    def change(m):
        for k in keys[:-1]:
            m = m[k]
        m[keys[-1]] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_without("model"), "field 'model' is missing (expected an object)"),
    (_with("model", value=["x"]), "field 'model' is a list, expected an object"),
    (_without("model", "source"), "field 'model.source' is missing (expected an object)"),
    (_with("model", "source", value="checkpoint"), "field 'model.source' is a string, expected an object"),
    (_without("model", "fingerprint"), "field 'model.fingerprint' is missing (expected a string)"),
    (_with("model", "vqvae_config", "vocab_size", value="16"),
     "field 'model.vqvae_config.vocab_size' is a string, expected an integer"),
    (_with("model", "description", value=3), "field 'model.description' is an integer, expected a string"),
    (_without("files"), "field 'files' is missing (expected an object)"),
    (_with("files", value=["cond.onnx"]), "field 'files' is a list, expected an object"),
    (_with("files", "cond.onnx", value="abc"), "field 'files.cond.onnx' is a string, expected an object"),
    (_with("files", WEIGHTS_FILE, value={"sha256": "xyz", "bytes": 1}),
     "field 'files.weights.bin.sha256' must be 64 lowercase hex digits"),
    (_with("files", WEIGHTS_FILE, value={"sha256": "0" * 64, "bytes": -1}),
     "field 'files.weights.bin.bytes' must be an integer >= 0"),
    (_with("files", WEIGHTS_FILE, value={"sha256": "0" * 64, "bytes": True}),
     "field 'files.weights.bin.bytes' must be an integer >= 0"),
    (_without("graphs"), "field 'graphs' is missing (expected an object)"),
    (_with("graphs", value="cond.onnx"), "field 'graphs' is a string, expected an object"),
    (_with("graphs", value={}), "field 'graphs' is empty"),
    (_with("graphs", "cond", value={"kind": "cond"}), "field 'graphs.cond' needs 'file' (a string)"),
    (_with("valid", value="yes"), "field 'valid' is a string, expected true or false"),
    (_with("max_batch", value=True), "field 'max_batch' is a boolean, expected an integer"),
    (_without("precision"), "field 'precision' is missing (expected a string)"),
])
def test_each_schema_failure_is_one_line_naming_the_field(export, change, message):
    d, manifest = export
    change(manifest)
    _rewrite(d, manifest)
    with pytest.raises(InvalidArgument) as e:
        ExportDir.open(d)
    text = str(e.value)
    assert message in text and "\n" not in text and str(d / MANIFEST) in text


def test_a_required_file_not_listed_is_refused(export):
    d, manifest = export
    del manifest["files"][CODEBOOK]
    _rewrite(d, manifest)
    with pytest.raises(InvalidArgument, match="lists no hash for codebook.npy; the manifest is incomplete"):
        ExportDir.open(d)


def test_missing_resized_changed_and_non_regular_files_are_refused(export):
    d, manifest = export
    (d / "cond.onnx").write_bytes(b"graph bytes!")  # one byte more
    with pytest.raises(InvalidArgument, match=r"cond.onnx: sha256 differs from the manifest \(12 bytes, the "
                                              r"manifest says 11\): the file was changed"):
        ExportDir.open(d)
    (d / "cond.onnx").write_bytes(b"GRAPH BYTES")  # same size, other bytes
    with pytest.raises(InvalidArgument, match="cond.onnx: sha256 differs from the manifest"):
        ExportDir.open(d)
    assert ExportDir.open(d, verify_hashes=False).verified == {}  # sizes only, when asked
    (d / "cond.onnx").unlink()
    with pytest.raises(InvalidArgument, match=r"cond.onnx: missing \(listed in manifest.json\)"):
        ExportDir.open(d)
    (d / "cond.onnx").mkdir()
    with pytest.raises(InvalidArgument, match="cond.onnx: not a regular file"):
        ExportDir.open(d)


def test_verify_checks_only_the_files_asked_for(export):
    d, manifest = export
    (d / "cond.onnx").unlink()
    e = ExportDir.open(d, check_files=False)
    assert e.verify([WEIGHTS_FILE]) == {WEIGHTS_FILE: manifest["files"][WEIGHTS_FILE]["sha256"]}
    with pytest.raises(InvalidArgument, match="cond.onnx: missing"):
        e.verify(["cond.onnx"])
    with pytest.raises(InvalidArgument, match="lists no hash for other.onnx"):
        e.verify(["other.onnx"])


def test_a_codebook_of_another_shape_is_refused(export):
    d, manifest = export
    np.save(d / CODEBOOK, np.zeros((V, CV + 1), dtype=np.float32))
    manifest["files"][CODEBOOK] = _entry(d / CODEBOOK)
    _rewrite(d, manifest)
    with pytest.raises(InvalidArgument, match=r"codebook.npy: float32 \(16, 5\), expected float32 \(16, 4\)"):
        ExportDir.open(d).codebook


def test_an_export_not_marked_valid_is_refused_unless_asked(export):
    d, manifest = export
    manifest["valid"] = False
    _rewrite(d, manifest)
    with pytest.raises(InvalidArgument, match="not marked valid"):
        ExportDir.open(d)
    assert ExportDir.open(d, require_valid=False).manifest["valid"] is False


def test_the_expected_manifest_digest_is_the_trust_anchor(export):
    d, manifest = export
    digest = sha256_file(d / MANIFEST)
    assert ExportDir.open(d, expect_sha256=digest.upper()).manifest_sha256 == digest
    # rewritten consistently (a file and its hash): the manifest's own checks pass, the anchor does not
    (d / WEIGHTS_FILE).write_bytes(b"other weights")
    manifest["files"][WEIGHTS_FILE] = _entry(d / WEIGHTS_FILE)
    _rewrite(d, manifest)
    assert ExportDir.open(d).verified[WEIGHTS_FILE] == manifest["files"][WEIGHTS_FILE]["sha256"]
    with pytest.raises(InvalidArgument) as e:
        ExportDir.open(d, expect_sha256=digest)
    assert f"expected {digest}: not the export you pinned" in str(e.value)
    with pytest.raises(InvalidArgument, match="expected manifest sha256 'abc': not a sha256"):
        ExportDir.open(d, expect_sha256="abc")
