"""The one loader of an export directory: every reader (runtime, validate, build-engines, export's
up-to-date check) opens an export through ExportDir and reads its files through it.

    export = ExportDir.open(path, expect_sha256=None, verify_hashes=True)

Opening refuses, with one line naming the file or field:
- no directory, no manifest, a manifest of another format or version, one whose sha256 is not the
  caller's `expect_sha256`, a field missing or of the wrong type (manifest.check_schema), an export
  not marked valid (unless `require_valid=False`);
- a listed name that is not a plain file name of the directory (`..`, `/`, an absolute path) or
  that resolves outside it (a symlink leading out) or to something other than a regular file:
  nothing outside the directory is ever opened;
- a graph, weights.bin or codebook.npy not listed; a listed file that is missing, of another
  size than listed, or (unless `verify_hashes=False`) of another sha256. `check_files=False`
  defers these to `verify(names)`, for readers that use only some of the files (build-engines
  --graph on a directory holding some graphs) or collect every failure (validate).

What this guards against: accidents (a file replaced, truncated, copied from another export, a
manifest edited by hand). Not against someone who can write the directory: they can rewrite the
manifest's hashes too. The anchor against that lives outside the directory: the manifest's sha256
given as `expect_sha256` (docs/RUNTIME.md).
"""
import os
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional

import numpy as np

from nova_deploy.artifacts.hashing import sha256_bytes, sha256_file
from nova_deploy.artifacts.manifest import SHA256_HEX, check_schema, parse_manifest
from nova_deploy.artifacts.names import CODEBOOK, MANIFEST, WEIGHTS_FILE
from nova_deploy.errors import InvalidArgument


def check_file_name(name, where) -> str:
    """name when it is a plain file name (what an export lists); InvalidArgument otherwise."""
    if (not isinstance(name, str) or name in ("", ".", "..") or os.path.isabs(name)
            or any(c in name for c in ("/", "\\", "\0"))):
        raise InvalidArgument(f"{where}: listed file {name!r} is not a file name inside the export directory "
                              f"(no '..', '/' or absolute paths)")
    return name


@dataclass
class ExportDir:
    path: Path
    manifest: dict
    manifest_sha256: str  # of manifest.json's bytes as read: the digest callers may pin (expect_sha256)
    spec: Any = None  # what read_spec made of the manifest (export.manifest.spec_from_manifest)
    verified: Dict[str, str] = field(default_factory=dict)  # file name -> sha256 checked by verify()

    @classmethod
    def open(cls, path, *, expect_sha256: Optional[str] = None, require_valid: bool = True,
             check_files: bool = True, verify_hashes: bool = True,
             read_spec: Optional[Callable[[dict, str], Any]] = None) -> "ExportDir":
        path = Path(path)
        if expect_sha256 is not None and not SHA256_HEX.fullmatch(str(expect_sha256).strip().lower()):
            raise InvalidArgument(f"expected manifest sha256 {expect_sha256!r}: not a sha256 (64 hex digits, as "
                                  f"`sha256sum manifest.json` prints)")
        if not path.is_dir():
            raise InvalidArgument(f"{path}: no such export directory (make one with `nova-deploy export --out {path}`)")
        where = path / MANIFEST
        if not where.is_file():
            raise InvalidArgument(f"{path}: not an export directory (no {MANIFEST})")
        data = _read_inside(path, MANIFEST, where)
        digest = sha256_bytes(data)
        if expect_sha256 is not None and digest != expect_sha256.strip().lower():
            raise InvalidArgument(f"{where}: sha256 {digest}, expected {expect_sha256.strip()}: not the export you "
                                  f"pinned (changed, or another export); refusing it")
        manifest = parse_manifest(data, where)
        check_schema(manifest, where)
        if require_valid and manifest["valid"] is not True:
            raise InvalidArgument(f"{path}: the export was not marked valid (its validation failed); export it again")
        files = manifest["files"]
        for name in files:
            check_file_name(name, where)
            if os.path.lexists(path / name):  # even unchecked files never lead out (missing ones: verify)
                _inside(path, name, path / name)
        required = [g["file"] for g in manifest["graphs"].values()] + [WEIGHTS_FILE, CODEBOOK]
        for name in required:
            check_file_name(name, where)
        export = cls(path, manifest, digest)
        if check_files:
            export.verify(required, hashes=verify_hashes)  # first: "lists no hash" for a required file
            export.verify(hashes=verify_hashes)
        if read_spec is not None:
            export.spec = read_spec(manifest, str(where))
        return export

    # ------------------------------------------------------------------ files
    def file(self, name: str) -> Path:
        """The path of a file the manifest lists, required to resolve inside the directory."""
        if name not in self.manifest["files"]:
            raise InvalidArgument(f"{self.path / MANIFEST}: lists no {name}")
        return _inside(self.path, name, self.path / name)

    def verify(self, names: Optional[Iterable[str]] = None, hashes: bool = True) -> Dict[str, str]:
        """Check the listed files (default: all) against the manifest: inside the directory, a
        regular file, the listed size and (hashes) sha256. Returns name -> sha256 of those hashed."""
        files = self.manifest["files"]
        for name in sorted(files if names is None else names):
            entry = files.get(name)
            if entry is None:
                raise InvalidArgument(f"{self.path / MANIFEST}: lists no hash for {name}; the manifest is incomplete")
            f = self.file(name)
            size = f.stat().st_size
            if size != entry["bytes"]:  # other bytes, so another sha256: no need to read them
                raise InvalidArgument(f"{self.path / name}: sha256 differs from the manifest ({size} bytes, the "
                                      f"manifest says {entry['bytes']}): the file was changed or truncated after export")
            if hashes and name not in self.verified:
                if sha256_file(f) != entry["sha256"]:
                    raise InvalidArgument(f"{self.path / name}: sha256 differs from the manifest: the file was "
                                          f"changed after export (or belongs to another export)")
                self.verified[name] = entry["sha256"]
        return {n: self.verified[n] for n in (files if names is None else names) if n in self.verified}

    @cached_property
    def codebook(self) -> np.ndarray:
        """codebook.npy: float32 V x Cvae, of the shape the manifest's VQVAE config gives."""
        path = self.file(CODEBOOK)
        try:
            codebook = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"{self.path / CODEBOOK}: unreadable ({e})") from None
        cfg = self.manifest["model"]["vqvae_config"]
        V, Cv = cfg["vocab_size"], cfg["z_channels"]
        if codebook.shape != (V, Cv) or codebook.dtype != np.float32:
            raise InvalidArgument(f"{self.path / CODEBOOK}: {codebook.dtype} {codebook.shape}, "
                                  f"expected float32 ({V}, {Cv})")
        return codebook

    @property
    def codebook_VC(self):
        """The codebook as a torch tensor (token ids -> h)."""
        import torch

        return torch.from_numpy(self.codebook)

    @property
    def fingerprint(self) -> str:
        return self.manifest["model"]["fingerprint"]

    @property
    def description(self) -> str:
        return self.manifest["model"].get("description", "?")


def _inside(root: Path, name: str, shown: Path) -> Path:
    """root/name when it resolves to a regular file inside root (symlinks followed: a link to a file
    elsewhere in the directory is fine, one leading out is not)."""
    real = Path(os.path.realpath(root / name))
    if Path(os.path.realpath(root)) not in real.parents:
        raise InvalidArgument(f"{shown}: leads outside the export directory (a symlink?); refusing to read it")
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        raise InvalidArgument(f"{shown}: missing (listed in {MANIFEST})") from None
    if not stat.S_ISREG(mode):
        raise InvalidArgument(f"{shown}: not a regular file")
    return real


def _read_inside(root: Path, name: str, shown: Path) -> bytes:
    try:
        return _inside(root, name, shown).read_bytes()
    except OSError as e:
        raise InvalidArgument(f"{shown}: unreadable ({e.strerror or e})") from None
