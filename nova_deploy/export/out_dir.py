"""Where an export is written, and how it replaces the previous one without losing a user's file.

    check_out_dir(out, fingerprint, new_files)  # before any work: refuse what is not ours to replace
    tmp = make_partial_dir(out)                 # .<out>.partial-XXXX beside out, owner-marked
    ... the export is written into tmp ...
    put_in_place(tmp, out)                      # out holds the new export, plus what the old one kept
    set_aside_failed(tmp, out)                  # or: <out>.failed, for inspection

The command owns three kinds of paths beside --out, each marked by an OWNER_MARKER file naming
the process that made it: `.<out>.partial-*` (an export being written), `.<out>.old-*` (the
previous export being removed) and `<out>.failed`. Nothing else is ever deleted. A hidden one whose
process is gone (a SIGKILL, a power cut) is removed by the next export to the same --out.

Replacing out: files of the previous export that its manifest does not list (engines/ of
build-engines, a user's notes) are hard-linked into the new export first, so they are in --out
before and after; then the two directories trade places in one renameat2(RENAME_EXCHANGE), so
--out is never missing. Where the filesystem cannot exchange, out is renamed aside and tmp renamed
in; a kill between those two renames is repaired by the next export, which renames the previous
export back to --out before anything else.
"""
import contextlib
import ctypes
import errno
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Callable, Iterable, List, Optional

from nova_deploy.atomic_write import write_error
from nova_deploy.errors import InvalidArgument
from nova_deploy.artifacts.manifest import read_manifest
from nova_deploy.artifacts.names import MANIFEST

OWNER_MARKER = ".nova-deploy-owner"
PARTIAL, OLD = "partial", "old"


# ---------------------------------------------------------------------------------- ownership
def failed_dir(out: Path) -> Path:
    return out.with_name(out.name + ".failed")


def _hidden_prefix(out: Path, kind: str) -> str:
    return f".{out.name}.{kind}-"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def mark_owned(directory: Path) -> None:
    """Claim directory for this process; the marker is what makes it deletable later."""
    record = {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": _boot_id()}
    (directory / OWNER_MARKER).write_text(json.dumps(record) + "\n")


def owner_record(directory: Path) -> Optional[dict]:
    """The marker's record, None when directory holds none (then it is not ours)."""
    try:
        record = json.loads((directory / OWNER_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _process_gone(record: dict) -> bool:
    """True only when the writer can be known to have ended: same host, and another boot or no such pid."""
    if record.get("host") != socket.gethostname():
        return False
    if record.get("boot_id") and record.get("boot_id") != _boot_id():
        return True
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_owned(directory: Path) -> None:
    """Delete directory if it carries the marker; anything unmarked is left alone."""
    if directory.is_dir() and not directory.is_symlink() and owner_record(directory) is not None:
        shutil.rmtree(directory, ignore_errors=True)


def clean_stale(out: Path) -> List[Path]:
    """Put back an export left aside by a kill between two renames, then delete the hidden
    directories of exports to out whose process is gone. Returns what was deleted."""
    prefixes = (_hidden_prefix(out, PARTIAL), _hidden_prefix(out, OLD))
    try:
        hidden = [p for p in out.parent.iterdir()
                  if p.name.startswith(prefixes) and p.is_dir() and not p.is_symlink()]
    except OSError:  # no parent yet, or one we may not list: nothing of ours can be there
        return []
    removed = []
    for p in sorted(hidden):
        record = owner_record(p)
        if record is None or not _process_gone(record):
            continue
        previous = p / "export"
        if p.name.startswith(_hidden_prefix(out, OLD)) and not out.exists() and (previous / MANIFEST).is_file():
            try:
                os.rename(previous, out)
            except OSError:  # it stays where it is, for the user to move back; never deleted
                continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


# ---------------------------------------------------------------------------------- checks
def previous_export_files(out: Path) -> Optional[set]:
    """Names the export in out wrote (its manifest's files and the manifest); None when the
    manifest does not say."""
    files = read_manifest(out).get("files")
    if not isinstance(files, dict):
        return None
    return set(files) | {MANIFEST, OWNER_MARKER}


def kept_entries(out: Path) -> List[str]:
    """Entries of out that the export there did not write: they are carried into the new export.
    (An out without a manifest is empty: check_out_dir refuses any other.)"""
    if not (out / MANIFEST).is_file():
        return sorted(p.name for p in out.iterdir() if p.name != OWNER_MARKER)
    ours = previous_export_files(out) or {MANIFEST, OWNER_MARKER}
    return sorted(p.name for p in out.iterdir() if p.name not in ours)


def check_out_dir(out: Path, fingerprint: str, new_files: Iterable[str]) -> None:
    """Refuse an --out that holds something other than an export of this very model, or user files
    that the new export would overwrite; refuse a <out>.failed that is not ours. Cleans up what
    killed exports to out left behind."""
    clean_stale(out)  # first: it may put the previous export back at out
    if out.exists() and not out.is_dir():
        raise InvalidArgument(f"--out {out} exists and is not a directory")
    failed = failed_dir(out)
    if failed.exists() and owner_record(failed) is None:
        raise InvalidArgument(f"{failed} exists and was not written by nova-deploy export (it is where a failed "
                              f"export is kept); move it away or choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise InvalidArgument(f"--out {out} is not empty and holds no {MANIFEST}: not an export directory; "
                                  f"refusing to overwrite it (choose an empty or new directory)")
        theirs = read_manifest(out).get("model", {})
        if not isinstance(theirs, dict) or theirs.get("fingerprint") != fingerprint:
            theirs = theirs if isinstance(theirs, dict) else {}
            raise InvalidArgument(
                f"--out {out} holds the export of a different model ({theirs.get('description', 'unknown')}, "
                f"fingerprint {str(theirs.get('fingerprint'))[:12]}; this model: {fingerprint[:12]}); "
                f"choose another --out or remove it")
        clash = sorted(set(kept_entries(out)) & (set(new_files) | {MANIFEST}))
        if clash:
            raise InvalidArgument(f"--out {out}: {', '.join(clash)} would be overwritten by the new export but "
                                  f"were not written by the previous one (its {MANIFEST} does not list them); "
                                  f"move them away or choose another --out")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidArgument(f"cannot create the parent directory of --out {out}: {e.strerror or e}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidArgument(f"cannot write to {parent}: permission denied")


# ---------------------------------------------------------------------------------- writing and swapping
def make_partial_dir(out: Path) -> Path:
    """A hidden, owner-marked sibling of out (same filesystem, so the final rename is atomic)."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_hidden_prefix(out, PARTIAL), dir=out.parent))
        mark_owned(tmp)
    except OSError as e:
        raise InvalidArgument(f"cannot write to {out.parent}: {e.strerror or e}") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the export is an ordinary directory
    return tmp


def _link_tree(src: Path, dst: Path) -> None:
    """dst gets src's entry without a second copy of the bytes (hard links; a copy where the
    filesystem has none)."""
    def link_or_copy(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=link_or_copy)
    elif src.is_symlink():
        os.symlink(os.readlink(src), dst)
    else:
        link_or_copy(src, dst)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the C library or
    the filesystem cannot, OSError on any other failure."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def put_in_place(tmp: Path, out: Path, step: Callable[[str], None] = lambda name: None) -> None:
    """Make the complete export in tmp the content of out, keeping what the previous export did
    not write. step(name) is called between the steps ("linked", "exchanged" or "set-aside"), so
    that tests can kill the process there."""
    if not out.exists():
        os.rename(tmp, out)
    else:
        _replace(tmp, out, step)
    with contextlib.suppress(OSError):
        (out / OWNER_MARKER).unlink()


def _replace(tmp: Path, out: Path, step: Callable[[str], None]) -> None:
    for name in kept_entries(out):
        _link_tree(out / name, tmp / name)
    mark_owned(out)  # the previous export, once swapped out, is then ours to delete
    step("linked")
    if exchange(tmp, out):
        step("exchanged")
        remove_owned(tmp)
        return
    old = Path(tempfile.mkdtemp(prefix=_hidden_prefix(out, OLD), dir=out.parent))
    mark_owned(old)
    os.rename(out, old / "export")
    step("set-aside")
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def set_aside_failed(tmp: Path, out: Path) -> Path:
    """Keep an export that failed validation as <out>.failed (replacing only one this command wrote)."""
    failed = failed_dir(out)
    if failed.exists():
        if owner_record(failed) is None:
            raise InvalidArgument(f"{failed} appeared during the export and was not written by nova-deploy "
                                  f"export; the failed export is discarded")
        shutil.rmtree(failed)
    os.rename(tmp, failed)
    return failed


def remove_failed(out: Path) -> None:
    """After a successful export, the failed one it replaces is no longer needed."""
    remove_owned(failed_dir(out))


def write_failure(out: Path, e: OSError):
    """One line for an OSError met while writing the export to out."""
    where = e.filename or out
    return write_error(where, e)
