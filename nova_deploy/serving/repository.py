"""Writing a Triton model repository over an export, and opening the Pipeline it serves.

    REPO/
      nova-deploy-repository.json     what wrote it: marks the directory as one triton-repo may replace
      NAME/
        config.pbtxt                  inputs, outputs, dynamic batching, instance groups (config.py)
        1/
          model.py                    the Python-backend model: nova_deploy.serving.triton_model
          export/                     the export's manifest and every file it lists (+ engines/ for tensorrt)
          checkpoints/                --backend torch from a checkpoint: the VAR and VQVAE files, source.json

Self-contained: every file is copied (symlinks followed), so the repository can be moved to another
host. It is built in a temporary sibling directory and renamed into place when complete.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from nova_deploy import __version__
from nova_deploy.errors import InvalidArgument, require
from nova_deploy.artifacts.export_dir import ExportDir
from nova_deploy.artifacts.names import MANIFEST
from nova_deploy.export.manifest import open_export
from nova_deploy.export.out_dir import exchange
from nova_deploy.serving.config import (CHECKPOINTS_SUBDIR, EXPORT_SUBDIR, MODEL_VERSION, ServingOptions,
                                        config_pbtxt)

MARKER = "nova-deploy-repository.json"
SOURCE_FILE = "source.json"
ENGINES_SUBDIR = "engines"
MODEL_PY = '''"""Triton Python-backend model written by `nova-deploy triton-repo`: needs nova-deploy installed."""
from nova_deploy.serving.triton_model import TritonPythonModel  # noqa: F401
'''


def write_repository(export_path, out, opts: ServingOptions) -> Path:
    """Write the repository for export_path to out; InvalidArgument (nothing written) when the export
    is invalid, lacks what opts.backend needs, or out holds something this command did not write."""
    export = open_export(export_path)
    spec = export.spec
    max_batch = opts.max_batch or spec.max_batch
    require(max_batch <= spec.max_batch, f"--max-batch {max_batch}: this export takes at most {spec.max_batch} "
                                         f"images per call (re-export with --max-batch {max_batch})")
    out = Path(out)
    _check_out(out, export.path)
    engines = _engines_dir(export) if opts.backend == "tensorrt" else None
    checkpoints = _checkpoint_source(export) if opts.backend == "torch" else None

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model_dir = tmp / opts.name
        version_dir = model_dir / MODEL_VERSION
        _copy_export(export, version_dir / EXPORT_SUBDIR, engines)
        if checkpoints:
            _copy_checkpoints(checkpoints, version_dir / CHECKPOINTS_SUBDIR)
        (version_dir / "model.py").write_text(MODEL_PY)
        (model_dir / "config.pbtxt").write_text(config_pbtxt(opts, max_batch, spec.vae.image_size))
        (tmp / MARKER).write_text(json.dumps({
            "written_by": f"nova-deploy {__version__} triton-repo", "model": opts.name,
            "export": str(export.path.resolve()), "fingerprint": export.fingerprint,
            "options": {**opts.__dict__, "max_batch": max_batch}}, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def open_pipeline(version_dir, backend: str, device: str, threads: Optional[int]):
    """The Pipeline over a repository version directory's export; refuses an export whose files
    differ from its manifest's hashes (Pipeline.from_dir verifies them)."""
    from nova_deploy.runtime.backends import open_backend
    from nova_deploy.runtime.pipeline import Pipeline

    version_dir = Path(version_dir)
    source = version_dir / CHECKPOINTS_SUBDIR / SOURCE_FILE
    if backend != "torch" or not source.is_file():
        return Pipeline.from_dir(version_dir / EXPORT_SUBDIR, backend=backend, device=device, threads=threads)
    # The manifest names the checkpoints where they were on the exporting host; the torch backend
    # reloads the copies in this repository instead (the fingerprint check still applies).
    export = open_export(version_dir / EXPORT_SUBDIR)
    record = json.loads(source.read_text())
    export.manifest["model"]["source"] = {**record, "var": str(source.parent / record["var"]),
                                          "vae": str(source.parent / record["vae"])}
    return Pipeline(export, open_backend(backend, export, device=device, threads=threads))


def _check_out(out: Path, export_path: Path) -> None:
    require(out.parent.is_dir(), f"--out {out}: its parent directory {out.parent} does not exist")
    if out.exists() and not (out.is_dir() and (out / MARKER).is_file()):
        raise InvalidArgument(f"--out {out} exists and is not a repository written by triton-repo (no {MARKER}); "
                              f"refusing to replace it (choose a new directory)")
    out_r, export_r = out.resolve(), export_path.resolve()
    require(export_r not in out_r.parents and out_r != export_r and out_r not in export_r.parents,
            f"--out {out} overlaps the export {export_path}: choose a directory outside it")


def _engines_dir(export: ExportDir) -> Path:
    engines = export.path / ENGINES_SUBDIR
    if not any(engines.glob("*/*.plan")):
        raise InvalidArgument(f"{export.path}: no TensorRT engines for --backend tensorrt; build them first with "
                              f"`nova-deploy build-engines {export.path}`, or use --backend onnxruntime")
    return engines


def _checkpoint_source(export: ExportDir) -> Optional[dict]:
    """The checkpoint files --backend torch reloads; None for a preset (rebuilt from its seed)."""
    src = export.manifest["model"].get("source") or {}
    if src.get("kind") == "preset":
        return None
    require(src.get("kind") == "checkpoint", f"{export.path}: the manifest names no model source the torch "
                                             f"backend can load; use --backend onnxruntime")
    for key in ("var", "vae"):
        require(Path(src[key]).is_file(), f"--backend torch reloads the model from {src[key]}, which does not "
                                          f"exist here; use --backend onnxruntime")
    return src


def _copy_export(export: ExportDir, dest: Path, engines: Optional[Path]) -> None:
    dest.mkdir(parents=True)
    for name in [MANIFEST, *export.manifest["files"]]:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(export.path / name, target)  # follows symlinks: the copy holds the bytes
    if engines is not None:
        shutil.copytree(engines, dest / ENGINES_SUBDIR, symlinks=False)


def _copy_checkpoints(src: dict, dest: Path) -> None:
    dest.mkdir(parents=True)
    record = dict(src)
    for key in ("var", "vae"):
        name = f"{key}{''.join(Path(src[key]).suffixes)}"
        shutil.copyfile(src[key], dest / name)
        record[key] = name
    (dest / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n")


def _replace(tmp: Path, out: Path) -> None:
    """out becomes tmp; an earlier repository at out is removed only once tmp is in place (swapped
    in one step where the filesystem can, as the exporter swaps an export)."""
    if not out.exists():
        os.rename(tmp, out)
        return
    if exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)  # the earlier repository, now at tmp's name
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / out.name)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
