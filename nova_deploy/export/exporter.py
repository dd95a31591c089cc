"""Export a VAR + VQVAE pair to a validated directory of graphs, and re-validate one.

    spec = build_spec(...)                 # every graph, every dim range; bad options fail here
    check the output directory             # before any work: other model's export, unwritable
    trace each graph -> GraphWriter        # into a hidden temporary directory next to --out
    codebook.npy, validate_export          # always; mismatches are collected, never skipped
    manifest.json, then rename into place  # --out only ever holds a complete, valid export

A failed validation leaves its graphs in `<out>.failed/` (manifest "valid": false) for
inspection, never in --out.
"""
import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from nova_deploy.artifacts.hashing import file_size, sha256_file
from nova_deploy.artifacts.manifest import read_manifest, write_manifest
from nova_deploy.artifacts.names import CODEBOOK, MANIFEST, WEIGHTS_FILE
from nova_deploy.errors import InvalidArgument, NovaDeployError
from nova_deploy.export.graphs import graph_module
from nova_deploy.export.manifest import build_manifest, model_fingerprint, open_export
from nova_deploy.export.model_check import configs_of
from nova_deploy.export.onnx_io import GraphWriter, dummy_inputs, export_graph, trace_sizes
from nova_deploy.export.precision import check_representable, to_precision
from nova_deploy.export.spec import DEFAULT_OPSET, ExportSpec, PruneRange, build_spec
from nova_deploy.export.validate import Failure, ValidationReport, validate_export
from nova_deploy.model_source import ModelSource
from nova_deploy.models.var import VAR
from nova_deploy.models.vqvae import VQVAE


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict
    report: Optional[ValidationReport]  # None when reused: the manifest holds the validation it passed
    seconds: float
    peak_rss_mb: float
    reused: bool = False  # --out already held this very export (same model, options, version, files)
    trace_peak_rss_mb: Optional[float] = None  # the peak up to the end of tracing; later, validation's


def source_record(src: ModelSource) -> dict:
    """How `validate` finds the model again."""
    if src.var_path is not None:
        return {"kind": "checkpoint", "var": str(Path(src.var_path).resolve()), "vae": str(Path(src.vae_path).resolve()),
                "preset": src.preset}
    return {"kind": "preset", "preset": src.preset, "seed": 0}


# ---------------------------------------------------------------------------------- directory handling
def check_out_dir(out: Path, fingerprint: str) -> None:
    """Refuse an --out that holds something other than an export of this very model."""
    if out.exists() and not out.is_dir():
        raise InvalidArgument(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise InvalidArgument(f"--out {out} is not empty and holds no {MANIFEST}: not an export directory; "
                                  f"refusing to overwrite it (choose an empty or new directory)")
        theirs = read_manifest(out).get("model", {})
        if theirs.get("fingerprint") != fingerprint:
            raise InvalidArgument(
                f"--out {out} holds the export of a different model ({theirs.get('description', 'unknown')}, "
                f"fingerprint {str(theirs.get('fingerprint'))[:12]}; this model: {fingerprint[:12]}); "
                f"choose another --out or remove it")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidArgument(f"cannot create the parent directory of --out {out}: {e.strerror or e}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidArgument(f"cannot write to {parent}: permission denied")


def _temp_dir(out: Path) -> Path:
    """A hidden sibling of out (same filesystem, so the final rename is atomic)."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as e:
        raise InvalidArgument(f"cannot write to {out.parent}: {e.strerror or e}") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the export is an ordinary directory
    return tmp


def _move_into_place(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rename(out, old / "export")
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------- export
def export_model(src: ModelSource, out, precision: str = "fp32", max_batch: int = 8, opset: int = DEFAULT_OPSET,
                 prune: PruneRange = PruneRange(), threads: Optional[int] = None,
                 progress: bool = False, force: bool = False) -> ExportResult:
    """Export src's models to `out`; InvalidArgument for bad options, ExportError when export or
    validation fails (listing every mismatch). `out` then holds nothing new. When `out` already
    holds a valid export of the same model with the same options by this nova-deploy version and
    every file still has its recorded sha256, nothing is redone (export is deterministic, so it
    would write the same bytes) unless `force`."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    out = Path(out)
    var, vae = src.var, src.vae
    var_cfg, vae_cfg = configs_of(var, vae)
    spec = build_spec(var_cfg, vae_cfg, precision=precision, max_batch=max_batch, prune=prune, opset=opset)
    check_representable(var, precision)
    fingerprint = model_fingerprint(var, vae)
    check_out_dir(out, fingerprint)
    if not force:
        existing = up_to_date_export(out, fingerprint, spec)
        if existing is not None:
            return ExportResult(out, existing, None, time.perf_counter() - t0, _peak_rss_mb(), reused=True)
    threads = threads or torch.get_num_threads()

    tmp = _temp_dir(out)
    try:
        lp = to_precision(var, precision)
        writer = GraphWriter(tmp)
        try:
            bar = tqdm(spec.graphs, desc="export", unit="graph", disable=not progress)
            for g in bar:
                bar.set_postfix_str(g.name)
                sizes = trace_sizes(g)
                model = export_graph(graph_module(g, spec, lp, vae), g,
                                     dummy_inputs(g, sizes, var_cfg.num_classes), spec.opset)
                writer.write(model, g.file)
                del model
        finally:
            writer.close()
        del lp
        trace_peak = _peak_rss_mb()
        np.save(tmp / CODEBOOK, vae.quantize.embedding.weight.detach().float().cpu().numpy())

        report = validate_export(tmp, spec, var, vae, threads=threads, progress=progress)
        files = {p.name: {"sha256": sha256_file(p), "bytes": file_size(p)}
                 for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = build_manifest(
            spec_json=spec.to_json(), valid=report.passed, fingerprint=fingerprint, source=source_record(src),
            description=src.description, var_config=var_cfg, vqvae_config=vae_cfg, files=files,
            weights=weights_summary(spec, var, vae, writer, files), validation=report.to_json())
        write_manifest(tmp, manifest)
        if not report.passed:
            failed = out.with_name(out.name + ".failed")
            shutil.rmtree(failed, ignore_errors=True)
            os.rename(tmp, failed)
            report.raise_if_failed(f"the graphs are kept in {failed} for inspection; {out} is unchanged")
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out, manifest, report, time.perf_counter() - t0, _peak_rss_mb(), trace_peak_rss_mb=trace_peak)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def weights_summary(spec: ExportSpec, var: VAR, vae: VQVAE, writer: GraphWriter, files: dict) -> dict:
    """weights.bin against the raw bytes of the weights the graphs are made of."""
    from nova_deploy.export.precision import TORCH_DTYPE

    item = torch.tensor([], dtype=TORCH_DTYPE[spec.precision]).element_size()
    var_raw = sum(p.numel() * (4 if name.startswith("head.") else item) for name, p in var.named_parameters())
    vae_raw = sum(p.numel() * p.element_size() for m in (vae.post_quant_conv, vae.decoder, vae.quantize.quant_resi)
                  for p in m.parameters())
    graph_bytes = sum(v["bytes"] for k, v in files.items() if k.endswith(".onnx"))
    return {"file": WEIGHTS_FILE, "bytes_on_disk": files[WEIGHTS_FILE]["bytes"],
            "raw_weight_bytes": var_raw + vae_raw, "raw_var_bytes": var_raw, "raw_vqvae_bytes": vae_raw,
            "bytes_referenced_by_graphs": writer.report.bytes_referenced,
            "tensors_stored": writer.report.tensors_written, "tensors_referenced": writer.report.tensors_referenced,
            "graph_files_bytes": graph_bytes, "codebook_bytes": files[CODEBOOK]["bytes"],
            "directory_bytes": sum(v["bytes"] for v in files.values())}


def up_to_date_export(out: Path, fingerprint: str, spec: ExportSpec) -> Optional[dict]:
    """The manifest of `out` if it is exactly what exporting now would write, else None."""
    from nova_deploy import __version__

    if not (out / MANIFEST).is_file():
        return None
    try:  # the loader: schema, names inside out, every size and sha256 as listed
        manifest = open_export(out).manifest
    except NovaDeployError:
        return None
    same = (manifest["model"]["fingerprint"] == fingerprint
            and manifest.get("versions", {}).get("nova_deploy") == __version__
            and {k: manifest.get(k) for k in spec.to_json()} == spec.to_json())
    return manifest if same else None


# ---------------------------------------------------------------------------------- re-validation
def validate_dir(out, src: ModelSource, threads: Optional[int] = None, progress: bool = False,
                 expect_sha256: Optional[str] = None) -> ValidationReport:
    """Re-run every validation check on an export directory against src's models, the export
    compared with the model first (model_check); ExportError on any failure. expect_sha256: the
    manifest's digest the caller trusts (refused when it differs). The directory is not modified."""
    out = Path(out)
    export = open_export(out, expect_sha256=expect_sha256, require_valid=False, check_files=False)
    manifest = export.manifest
    var, vae = src.var, src.vae
    fingerprint = model_fingerprint(var, vae)
    if manifest["model"]["fingerprint"] != fingerprint:
        raise InvalidArgument(f"{out} was exported from another model ({manifest['model'].get('description')}); "
                              f"this one ({src.description}) has fingerprint {fingerprint[:12]}, the export "
                              f"{manifest['model']['fingerprint'][:12]}")
    report = validate_export(out, export.spec, var, vae, export=export, threads=threads or torch.get_num_threads(),
                             progress=progress)
    if not manifest["valid"]:
        report.failures.insert(0, Failure(MANIFEST, "the export was not marked valid when it was written"))
    report.raise_if_failed(str(out))
    return report
