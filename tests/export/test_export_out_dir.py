"""Replacing --out loses nothing of the user's: files the previous export did not write are kept (or
the export is refused, naming them), only paths the command marked as its own are deleted, and a
kill at any point of the swap leaves --out holding a complete export (old or new)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from cli_runner import run_cli
from nova_deploy.errors import InvalidArgument
from nova_deploy.export import out_dir as od
from nova_deploy.export.manifest import FORMAT, FORMAT_VERSION, MANIFEST

FINGERPRINT = "f" * 64
NEW_FILES = ["scale_00.onnx", "weights.bin", "codebook.npy"]


def fake_export(path, version="old", files=("scale_00.onnx", "weights.bin")):
    """A directory that looks like an export of FINGERPRINT whose manifest lists `files`."""
    path.mkdir(parents=True)
    for name in files:
        (path / name).write_text(version)
    (path / MANIFEST).write_text(json.dumps({
        "format": FORMAT, "format_version": FORMAT_VERSION, "valid": True, "version": version,
        "model": {"fingerprint": FINGERPRINT, "description": "fake"},
        "files": {name: {"sha256": "0", "bytes": len(version)} for name in files}}))
    return path


def owned(path, pid):
    path.mkdir(parents=True)
    (path / od.OWNER_MARKER).write_text(json.dumps({"pid": pid, "host": os.uname().nodename,
                                                    "boot_id": od._boot_id()}))
    return path


def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def names(directory):
    return sorted(p.name for p in directory.iterdir())


def test_user_file_the_new_export_would_overwrite_is_refused_by_name(tmp_path):
    out = fake_export(tmp_path / "x", files=("scale_00.onnx",))
    (out / "weights.bin").write_text("the user's own file, not in the manifest")
    with pytest.raises(InvalidArgument, match=r"weights.bin would be overwritten by the new export but were not "
                                              r"written by the previous one"):
        od.check_out_dir(out, FINGERPRINT, NEW_FILES)
    assert (out / "weights.bin").read_text().startswith("the user's own file")


def test_failed_dir_not_written_by_the_command_is_refused_before_any_work(tmp_path):
    out = tmp_path / "x"
    failed = tmp_path / "x.failed"
    failed.mkdir()
    (failed / "thesis.tex").write_text("mine")
    r = run_cli("export", "--preset", "tiny", "--out", out)
    assert r.exit_code == 2 and f"{failed} exists and was not written by nova-deploy export" in r.output
    assert names(tmp_path) == ["x.failed"] and names(failed) == ["thesis.tex"]


def test_owned_failed_dir_is_replaced_and_removed_after_success(tmp_path):
    out, tmp = tmp_path / "x", tmp_path / ".x.partial-1"
    owned(tmp_path / "x.failed", dead_pid())
    owned(tmp, os.getpid())
    (tmp / "scale_00.onnx").write_text("failed graph")
    assert od.set_aside_failed(tmp, out) == tmp_path / "x.failed"
    assert (tmp_path / "x.failed" / "scale_00.onnx").read_text() == "failed graph"
    od.remove_failed(out)
    assert names(tmp_path) == []


def test_stale_hidden_dirs_are_cleaned_only_when_owned_and_their_process_is_gone(tmp_path):
    out = fake_export(tmp_path / "x")
    gone = owned(tmp_path / ".x.partial-gone", dead_pid())
    alive = owned(tmp_path / ".x.partial-alive", os.getpid())  # an export still running
    unmarked = tmp_path / ".x.partial-unmarked"
    unmarked.mkdir()
    other = owned(tmp_path / ".y.partial-gone", dead_pid())  # another --out's
    od.check_out_dir(out, FINGERPRINT, NEW_FILES)
    assert not gone.exists()
    assert alive.exists() and unmarked.exists() and other.exists()


def test_replacing_keeps_what_the_previous_export_did_not_write(tmp_path):
    out = fake_export(tmp_path / "x")
    (out / "notes.txt").write_text("my notes")
    (out / "engines" / "rtx-sm89").mkdir(parents=True)
    (out / "engines" / "rtx-sm89" / "scale_00.plan").write_bytes(b"plan")
    tmp = od.make_partial_dir(out)
    fake_export(tmp / "new", version="new")
    for p in (tmp / "new").iterdir():
        p.rename(tmp / p.name)
    (tmp / "new").rmdir()
    od.put_in_place(tmp, out)
    assert json.loads((out / MANIFEST).read_text())["version"] == "new"
    assert (out / "weights.bin").read_text() == "new"
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "engines" / "rtx-sm89" / "scale_00.plan").read_bytes() == b"plan"
    assert od.OWNER_MARKER not in names(out)
    assert names(tmp_path) == ["x"]


def test_an_empty_out_is_simply_replaced(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    od.check_out_dir(out, FINGERPRINT, NEW_FILES)
    tmp = od.make_partial_dir(out)
    (tmp / "weights.bin").write_text("new")
    od.put_in_place(tmp, out)
    assert names(out) == ["weights.bin"] and names(tmp_path) == ["x"]


KILL_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from nova_deploy.export import out_dir as od

    parent, kill_at, can_exchange = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    out = parent / "x"
    tmp = od.make_partial_dir(out)
    (tmp / "manifest.json").write_text((out / "manifest.json").read_text().replace('"old"', '"new"'))
    (tmp / "weights.bin").write_text("new")
    if not can_exchange:
        od.exchange = lambda a, b: False
    def step(name):
        if name == kill_at:
            os._exit(9)  # as SIGKILL: no cleanup runs
    od.put_in_place(tmp, out, step)
""")


@pytest.mark.parametrize("kill_at, can_exchange", [("linked", True), ("exchanged", True),
                                                   ("linked", False), ("set-aside", False)])
def test_kill_during_the_swap_never_loses_the_export(tmp_path, kill_at, can_exchange):
    """Killed between any two steps: --out holds the old or the new export with the user's file, at
    once where the filesystem can exchange two directories, else after the next export's check;
    that check also removes what the killed process left."""
    out = fake_export(tmp_path / "x")
    (out / "notes.txt").write_text("my notes")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path), kill_at, "1" if can_exchange else "0"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 9, r.stderr
    if can_exchange:
        assert (out / MANIFEST).is_file()
    od.check_out_dir(out, FINGERPRINT, NEW_FILES)
    version = json.loads((out / MANIFEST).read_text())["version"]
    assert version == ("new" if kill_at == "exchanged" else "old")
    assert (out / "weights.bin").read_text() == version
    assert (out / "notes.txt").read_text() == "my notes"
    assert names(tmp_path) == ["x"]
