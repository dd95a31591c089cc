"""An export directory opened for running: manifest, spec, codebook, checked against its files.

Opening refuses, with one line naming the file, a directory that is not a complete and valid
export of this nova-deploy's format: no or unreadable manifest, not marked valid, a file listed
but missing, a file whose sha256 or size differs from the manifest (a graph or weights file
replaced or truncated), graph declarations that differ from the spec this version builds.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

import numpy as np
import torch

from nova_deploy.errors import InvalidArgument
from nova_deploy.export.manifest import CODEBOOK, MANIFEST, read_manifest, spec_from_manifest
from nova_deploy.export.onnx_io import WEIGHTS_FILE, file_size, sha256_file
from nova_deploy.export.spec import ExportSpec


@dataclass
class ExportDir:
    path: Path
    manifest: dict
    spec: ExportSpec
    codebook_VC: torch.Tensor  # float32 V x Cvae: token ids -> h

    @classmethod
    def open(cls, path, verify_hashes: bool = True) -> "ExportDir":
        path = Path(path)
        if not path.is_dir():
            raise InvalidArgument(f"{path}: no such export directory (make one with `nova-deploy export --out {path}`)")
        manifest = read_manifest(path)
        if not manifest.get("valid", False):
            raise InvalidArgument(f"{path}: the export was not marked valid (its validation failed); export it again")
        files: Dict[str, dict] = manifest.get("files") or {}
        for name in [g["file"] for g in manifest.get("graphs", {}).values()] + [WEIGHTS_FILE, CODEBOOK]:
            if name not in files:
                raise InvalidArgument(f"{path / MANIFEST}: lists no hash for {name}; the manifest is incomplete")
        for name, entry in sorted(files.items()):
            f = path / name
            if not f.is_file():
                raise InvalidArgument(f"{f}: missing (listed in {MANIFEST})")
            if file_size(f) != entry.get("bytes"):
                raise InvalidArgument(f"{f}: {file_size(f)} bytes, the manifest says {entry.get('bytes')}: "
                                      f"the file was changed or truncated after export")
            if verify_hashes and sha256_file(f) != entry.get("sha256"):
                raise InvalidArgument(f"{f}: sha256 differs from the manifest: the file was changed after export "
                                      f"(or belongs to another export)")
        spec = spec_from_manifest(manifest, str(path / MANIFEST))
        codebook = np.load(path / CODEBOOK, allow_pickle=False)
        V, Cv = spec.vae.vocab_size, spec.vae.z_channels
        if codebook.shape != (V, Cv) or codebook.dtype != np.float32:
            raise InvalidArgument(f"{path / CODEBOOK}: {codebook.dtype} {codebook.shape}, expected float32 ({V}, {Cv})")
        return cls(path, manifest, spec, torch.from_numpy(codebook))

    @property
    def fingerprint(self) -> str:
        return self.manifest["model"]["fingerprint"]

    @property
    def description(self) -> str:
        return self.manifest["model"].get("description", "?")

    def file(self, name: str) -> Path:
        return self.path / name
