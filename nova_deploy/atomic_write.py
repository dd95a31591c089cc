"""Every file nova-deploy writes goes through write_atomic: a temporary sibling, flushed to disk,
then renamed over the target.

So a kill, a full disk, a read-only directory or a file-size limit leaves the target as it was
(absent, or the previous file), never a part of it, and the OS error becomes one line naming the
path (WriteError, exit 2 on the CLI) instead of a traceback.
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from nova_deploy.errors import WriteError


def write_error(path, e: OSError) -> WriteError:
    """One line naming the path and what the OS said (e.g. 'No space left on device')."""
    return WriteError(f"cannot write {path}: {e.strerror or e}")


def require_parent_dir(path) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise WriteError(f"cannot write {path}: output directory {path.parent} does not exist")
    return path


def ensure_dir(path) -> Path:
    """mkdir -p, its OSError as one line."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(f"cannot create directory {path}: {e.strerror or e}") from None
    return path


def append_line(path, line: str) -> None:
    """A line appended to a log (not atomic: a log grows; a failure is one line like any write)."""
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError as e:
        raise write_error(path, e) from None


def write_atomic(path, write: Callable[[Path], None], mode: int = 0o666) -> Path:
    """write(tmp) fills a temporary file next to path (same filesystem, so the rename is atomic);
    it is then fsynced, given `mode` (less the umask) and renamed to path. The temporary file never
    outlives the call."""
    path = require_parent_dir(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        _fsync(tmp)
        os.chmod(tmp, mode & ~_umask())  # mkstemp creates 0600; artefacts are ordinary files
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def write_bytes_atomic(path, data: bytes) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path, obj, indent: int = 1) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
