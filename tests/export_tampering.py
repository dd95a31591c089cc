"""Tampered copies of an export for the loader, validate, runtime and build-engines tests."""
import shutil
from pathlib import Path

import numpy as np

from nova_deploy.artifacts.hashing import file_size, sha256_file
from nova_deploy.artifacts.manifest import read_manifest, write_manifest
from nova_deploy.artifacts.names import CODEBOOK, MANIFEST, WEIGHTS_FILE


def copy_export(export_dir, to: Path) -> Path:
    """A copy a test may change (the session's exports must stay as they are)."""
    return Path(shutil.copytree(export_dir, to))


def rehash(d: Path, name: str) -> None:
    """Record name's present sha256 and size in the manifest, as someone covering a change would."""
    manifest = read_manifest(d)
    manifest["files"][name] = {"sha256": sha256_file(d / name), "bytes": file_size(d / name)}
    write_manifest(d, manifest)


def flip_weight_byte(d: Path, at: int = 1000) -> None:
    data = bytearray((d / WEIGHTS_FILE).read_bytes())
    data[at] ^= 1
    (d / WEIGHTS_FILE).write_bytes(bytes(data))


def negate_codebook(d: Path) -> None:
    np.save(d / CODEBOOK, -np.load(d / CODEBOOK))


def edit_manifest(d: Path, change) -> None:
    manifest = read_manifest(d)
    change(manifest)
    write_manifest(d, manifest)


def manifest_sha256(d: Path) -> str:
    return sha256_file(d / MANIFEST)
