"""I/O failures are errors, not tracebacks: a missing directory, a read-only or full filesystem and
the file-size limit give one line naming the path and the OS error, exit 2, and leave the target as
it was, with no temporary file (issue 25 items 5-6; faults injected, or RLIMIT_FSIZE in a subprocess)."""
import errno
import os
import resource
import subprocess
import sys

import pytest

from cli_runner import run_cli
from nova_deploy import atomic_write
from nova_deploy.atomic_write import write_atomic, write_bytes_atomic
from nova_deploy.errors import WriteError


def failing_write(code):
    def write(tmp):
        tmp.write_bytes(b"half")
        raise OSError(code, os.strerror(code))
    return write


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EFBIG, errno.EACCES])
def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, code):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(WriteError, match=f"cannot write {target}: {os.strerror(code)}$"):
        write_atomic(target, failing_write(code))
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]


def test_rename_failure_is_one_line_too(tmp_path, monkeypatch):
    def no_rename(a, b):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(atomic_write.os, "replace", no_rename)
    with pytest.raises(WriteError, match="Invalid cross-device link"):
        write_bytes_atomic(tmp_path / "f", b"data")
    assert os.listdir(tmp_path) == []


def test_written_file_is_complete_and_ordinary(tmp_path):
    path = write_bytes_atomic(tmp_path / "f.bin", b"x" * 1000)
    umask = os.umask(0)
    os.umask(umask)
    assert path.read_bytes() == b"x" * 1000 and (path.stat().st_mode & 0o777) == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["f.bin"]


def test_convert_checkpoint_to_a_missing_directory(golden_dir, tmp_path):
    dst = tmp_path / "nowhere" / "var.safetensors"
    r = run_cli("convert-checkpoint", golden_dir / "var_official_tiny.var.pth", dst)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.strip() == f"error: cannot write {dst}: output directory {dst.parent} does not exist"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_convert_checkpoint_to_a_full_or_read_only_filesystem(golden_dir, tmp_path, monkeypatch, code):
    from nova_deploy import checkpoint

    def save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"part of a checkpoint")
        raise OSError(code, os.strerror(code), filename)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    dst = tmp_path / "var.safetensors"
    r = run_cli("convert-checkpoint", golden_dir / "var_official_tiny.var.pth", dst)
    assert r.exit_code == 2 and r.output.strip() == f"error: cannot write {dst}: {os.strerror(code)}"
    assert os.listdir(tmp_path) == []


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def run_limited(*args, cwd):
    """`nova-deploy ARGS` in a fresh process that may write no file beyond 64 KB."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", "from nova_deploy.cli.main import main; main()", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size)


def test_convert_checkpoint_beyond_the_file_size_limit(golden_dir, tmp_path):
    dst = tmp_path / "var.safetensors"  # the tiny VAR is 0.6 MB
    r = run_limited("convert-checkpoint", golden_dir / "var_official_tiny.var.pth", dst, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"error: cannot write {dst}: File too large"
    assert os.listdir(tmp_path) == []


def test_export_beyond_the_file_size_limit(tmp_path):
    out = tmp_path / "engines" / "x"
    r = run_limited("export", "--preset", "tiny", "--out", out, "--max-batch", 2, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write ") and last.endswith("File too large") and "Traceback" not in r.stderr
    assert os.listdir(tmp_path / "engines") == []  # no --out, no hidden partial directory


def test_export_to_a_full_disk(tmp_path, monkeypatch):
    from nova_deploy.export import exporter

    class FullDisk(exporter.GraphWriter):
        def write(self, model, file):
            (self.out_dir / file).write_bytes(b"part of a graph")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.out_dir / file))

    monkeypatch.setattr(exporter, "GraphWriter", FullDisk)
    out = tmp_path / "engines" / "x"
    r = run_cli("export", "--preset", "tiny", "--out", out, "--max-batch", 2)
    assert r.exit_code == 2 and "Traceback" not in r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("error: cannot write ") and last.endswith("cond.onnx: No space left on device")
    assert os.listdir(tmp_path / "engines") == []
