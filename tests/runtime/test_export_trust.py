"""What `generate --engines` and Pipeline.from_dir trust: the bytes they use are checked against
the manifest at open, nothing outside the export is read, and a manifest digest given by the
caller is the anchor against a directory rewritten consistently (file and hash together)."""
import pytest

from cli_runner import run_cli
from export_sources import one_thread  # noqa: F401  (autouse: one CPU thread)
from export_tampering import copy_export, edit_manifest, flip_weight_byte, manifest_sha256, rehash
from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.errors import InvalidArgument
from nova_deploy.runtime.pipeline import Pipeline

pytestmark = pytest.mark.slow  # needs the session's small export


@pytest.fixture
def export_copy(small_export, tmp_path):
    return copy_export(small_export.out_dir, tmp_path / "export")


def one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and lines[-1].startswith("error: "), result.output
    assert not any("Traceback" in line for line in lines)
    return lines[-1]


def test_generate_refuses_weights_changed_after_export(export_copy, tmp_path):
    flip_weight_byte(export_copy)
    line = one_error_line(run_cli("generate", "--engines", export_copy, "--class", 1, "--out", tmp_path / "g.png"))
    assert f"{export_copy / WEIGHTS_FILE}: sha256 differs from the manifest" in line
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("entry", ["../../../../etc/passwd", "/etc/passwd"])
def test_generate_reads_nothing_outside_the_export(export_copy, tmp_path, entry):
    edit_manifest(export_copy, lambda m: m["files"].update({entry: {"sha256": "0" * 64, "bytes": 1}}))
    line = one_error_line(run_cli("generate", "--engines", export_copy, "--out", tmp_path / "g.png"))
    assert f"listed file {entry!r} is not a file name inside the export directory" in line


def test_generate_refuses_a_symlink_out_without_showing_its_target(export_copy, tmp_path):
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes((export_copy / WEIGHTS_FILE).read_bytes() + b"extra")
    (export_copy / WEIGHTS_FILE).unlink()
    (export_copy / WEIGHTS_FILE).symlink_to(outside)
    line = one_error_line(run_cli("generate", "--engines", export_copy, "--out", tmp_path / "g.png"))
    assert "weights.bin: leads outside the export directory" in line
    assert str(outside.stat().st_size) not in line


def test_a_manifest_with_a_field_of_the_wrong_type_is_one_line(export_copy, tmp_path):
    edit_manifest(export_copy, lambda m: m.update(graphs=["cond.onnx"]))
    line = one_error_line(run_cli("generate", "--engines", export_copy, "--out", tmp_path / "g.png"))
    assert "field 'graphs' is a list, expected an object" in line


def test_a_rewritten_weight_and_hash_pass_the_manifest_but_not_a_pinned_digest(small_export, export_copy):
    pinned = manifest_sha256(small_export.out_dir)
    with Pipeline.from_dir(export_copy, threads=1, expect_sha256=pinned) as pipe:
        assert pipe.export.manifest_sha256 == pinned
    flip_weight_byte(export_copy)
    rehash(export_copy, WEIGHTS_FILE)
    # the manifest guards against accidents only: a consistent rewrite passes it (docs/RUNTIME.md) ...
    with Pipeline.from_dir(export_copy, threads=1) as pipe:
        assert pipe.export.manifest_sha256 != pinned
    # ... and is refused against the digest the caller kept
    with pytest.raises(InvalidArgument, match=f"expected {pinned}: not the export you pinned"):
        Pipeline.from_dir(export_copy, threads=1, expect_sha256=pinned)


def test_generate_expect_sha256(small_export, tmp_path):
    pinned = manifest_sha256(small_export.out_dir)
    line = one_error_line(run_cli("generate", "--engines", small_export.out_dir, "--expect-sha256", "f" * 64,
                                  "--out", tmp_path / "g.png"))
    assert f"sha256 {pinned}, expected {'f' * 64}: not the export you pinned" in line
    r = run_cli("generate", "--engines", small_export.out_dir, "--expect-sha256", pinned, "--class", 1,
                "--threads", 1, "--out", tmp_path / "g.png")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "g.png").is_file()
    line = one_error_line(run_cli("generate", "--preset", "tiny", "--expect-sha256", pinned, "--out", tmp_path / "h.png"))
    assert "--expect-sha256 pins the manifest of an export: give it with --engines" in line


def test_a_manifest_edited_to_more_classes_fails_in_one_line_when_a_graph_cannot_run_it(export_copy, tmp_path):
    """The manifest is not hashed (only a pin guards it): the runtime believes the edited class
    count, and the cond graph's class embedding then cannot take the id; one line, not a traceback."""
    num_classes = edit_manifest_classes(export_copy, 1000)
    line = one_error_line(run_cli("generate", "--engines", export_copy, "--class", num_classes + 5,
                                  "--out", tmp_path / "g.png"))
    assert "graph cond failed on backend onnxruntime" in line and "nova-deploy validate" in line
    assert not (tmp_path / "g.png").exists()


def edit_manifest_classes(d, n: int) -> int:
    """Set the manifest's num_classes to n; the model's own class count."""
    import json

    before = json.loads((d / "manifest.json").read_text())["model"]["var_config"]["num_classes"]
    edit_manifest(d, lambda m: m["model"]["var_config"].update(num_classes=n))
    return before
