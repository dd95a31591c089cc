"""Export a VAR + VQVAE pair to a validated directory of graphs, and re-validate one.

    spec = build_spec(...)                 # every graph, every dim range; bad options fail here
    check the output directory             # before any work: other model's export, unwritable
    trace each graph -> GraphWriter        # into a hidden temporary directory next to --out
    codebook.npy, validate_export          # always; mismatches are collected, never skipped
    manifest.json, then rename into place  # --out only ever holds a complete, valid export

A failed validation leaves its graphs in `<out>.failed/` (manifest "valid": false) for
inspection, never in --out. How --out is replaced, and what of it is kept: out_dir.py.
"""
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from nova_deploy.artifacts.hashing import file_size, sha256_file
from nova_deploy.artifacts.manifest import write_manifest
from nova_deploy.artifacts.names import CODEBOOK, MANIFEST, WEIGHTS_FILE
from nova_deploy.errors import InvalidArgument, NovaDeployError
from nova_deploy.export.graphs import graph_module
from nova_deploy.export.manifest import build_manifest, model_fingerprint, open_export
from nova_deploy.export.model_check import configs_of
from nova_deploy.export.onnx_io import GraphWriter, dummy_inputs, export_graph, trace_sizes
from nova_deploy.export.out_dir import (OWNER_MARKER, check_out_dir, make_partial_dir, put_in_place, remove_failed,
                                        set_aside_failed, write_failure)
from nova_deploy.export.precision import check_representable, to_precision
from nova_deploy.export.spec import DEFAULT_OPSET, ExportSpec, PruneRange, build_spec
from nova_deploy.export.validate import Failure, ValidationReport, validate_export
from nova_deploy.memory_estimate import generation_bytes, require_memory
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
        record = {"kind": "checkpoint", "var": str(Path(src.var_path).resolve()),
                  "vae": str(Path(src.vae_path).resolve()), "preset": src.preset}
        # which bundled model: its measured NOVA default applies to the export (nova/model_defaults.py)
        return {**record, "bundled_model": src.bundled} if src.bundled else record
    return {"kind": "preset", "preset": src.preset, "seed": 0}


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
    require_memory(generation_bytes(max_batch, var_cfg.depth, var_cfg.embed_dim, var_cfg.patch_nums, vae_cfg.vocab_size,
                                    vae_cfg.ch, vae_cfg.ch_mult, var_cfg.mlp_ratio),
                   f"--max-batch {max_batch}: validating the export at that batch", "lower --max-batch")
    fingerprint = model_fingerprint(var, vae)
    check_out_dir(out, fingerprint, [g.file for g in spec.graphs] + [WEIGHTS_FILE, CODEBOOK])
    if not force:
        existing = up_to_date_export(out, fingerprint, spec)
        if existing is not None:
            return ExportResult(out, existing, None, time.perf_counter() - t0, _peak_rss_mb(), reused=True)
    threads = threads or torch.get_num_threads()

    tmp = make_partial_dir(out)
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
        with open(tmp / CODEBOOK, "wb") as f:
            np.save(f, vae.quantize.embedding.weight.detach().float().cpu().numpy())

        report = validate_export(tmp, spec, var, vae, threads=threads, progress=progress)
        files = {p.name: {"sha256": sha256_file(p), "bytes": file_size(p)}
                 for p in sorted(tmp.iterdir()) if p.is_file() and p.name != OWNER_MARKER}
        manifest = build_manifest(
            spec_json=spec.to_json(), valid=report.passed, fingerprint=fingerprint, source=source_record(src),
            description=src.description, var_config=var_cfg, vqvae_config=vae_cfg, files=files,
            weights=weights_summary(spec, var, vae, writer, files), validation=report.to_json())
        write_manifest(tmp, manifest)
        if not report.passed:
            failed = set_aside_failed(tmp, out)
            report.raise_if_failed(f"the graphs are kept in {failed} for inspection; {out} is unchanged")
        put_in_place(tmp, out)
        remove_failed(out)
    except OSError as e:  # a full disk, a file-size limit, a directory made read-only meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_failure(out, e) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a no-op once it became <out>.failed or out
        raise
    return ExportResult(out, manifest, report, time.perf_counter() - t0, _peak_rss_mb(), trace_peak_rss_mb=trace_peak)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def weights_summary(spec: ExportSpec, var: VAR, vae: VQVAE, writer: GraphWriter, files: dict) -> dict:
    """weights.bin against the raw bytes of the weights the graphs are made of."""

    item = torch.tensor([], dtype=spec.activation_element.torch).element_size()
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
