"""manifest.json: what an export directory holds and how to run it.

Written and read through nova_deploy.artifacts (manifest.py: atomic write, schema check;
export_dir.py: the loader); this module builds its content and reads the spec back.

Schema (format_version 1):
  format, format_version
  valid               true only when every validation check passed
  model               fingerprint (sha256 of both state dicts), source (how `validate` reloads it),
                      description, var_config, vqvae_config
  precision, activation_dtype, max_batch, opset
  prune_range         first_scale, min_keep_fraction, upsample_mode (of the pruning fills)
  scales              patch_nums, tokens, prunable
  graphs              per graph: file, kind, scale, inputs/outputs [{name, dtype, shape, role}],
                      dims {name: {min, opt, max, note}} (shapes name the dims; ints are static)
  runtime             how the graphs chain (CFG rows, codebook, last-scale f_hat update)
  files               per file: sha256, bytes
  weights             weights.bin bytes against the raw weight bytes and what the graphs reference
  versions            library versions of the export
  validation          cases, tolerance table, failures, worst error per output
"""
import hashlib
import platform
from dataclasses import asdict
from typing import Dict

import torch

from nova_deploy import __version__
from nova_deploy.artifacts.export_dir import ExportDir
from nova_deploy.artifacts.manifest import FORMAT, FORMAT_VERSION
from nova_deploy.artifacts.names import CODEBOOK, MANIFEST
from nova_deploy.errors import ExportError, InvalidArgument
from nova_deploy.export.spec import ExportSpec, PruneRange, build_spec
from nova_deploy.models.presets import VARConfig, VQVAEConfig


def model_fingerprint(*models: torch.nn.Module) -> str:
    """sha256 over every state-dict entry (name, dtype, shape, bytes) of the models, in order."""
    h = hashlib.sha256()
    for m in models:
        for name, t in m.state_dict().items():
            t = t.detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def library_versions() -> Dict[str, str]:
    import numpy
    import onnx
    import onnx_ir
    import onnxruntime
    import onnxscript
    import polygraphy

    return {"nova_deploy": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "onnx": onnx.__version__, "onnx_ir": onnx_ir.__version__, "onnxscript": onnxscript.__version__,
            "onnxruntime": onnxruntime.__version__, "polygraphy": polygraphy.__version__, "numpy": numpy.__version__}


RUNTIME_NOTES = {
    "cfg_rows": "batch2 = 2 * batch: rows 0..B-1 conditional, B..2B-1 the null class; keep_idx rows repeat "
                "the sample's kept positions for both halves",
    "scale_loop": "cond -> for si: scale_XX (K/V prefix = concatenated k_new/v_new of earlier scales per layer; "
                  "at prunable scales keep_idx_i plus attn/ffn_cache_i = previous scale's attn/ffn_branch_i) "
                  "-> CFG + sampling on logits_BlV (runtime) -> h = codebook[ids] as B Cvae pn pn -> "
                  "next_input_XX (si < K-1) or final_fhat (last scale) -> decoder",
    "branch_outputs": "attn_branch_i / ffn_branch_i exist only where the next scale is prunable: they are its "
                      "caches (and what NOVA's per-layer statistic reads before it plans that scale)",
    "dense_at_prunable_scale": "keep_idx_i = all positions 0..l-1 computes every token (bitwise the dense step)",
    "codebook": f"{CODEBOOK}: float32 V x Cvae, the quantizer's embedding (token ids -> h)",
    "final_fhat": "final_fhat.onnx adds the last scale's Phi(h) to f_hat (no resampling); decoder.onnx then "
                  "equals VQVAE.fhat_to_img (image in [-1, 1])",
}


def build_manifest(*, spec_json: dict, valid: bool, fingerprint: str, source: dict, description: str,
                   var_config, vqvae_config, files: Dict[str, dict], weights: dict, validation: dict) -> dict:
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "valid": bool(valid),
        "model": {"fingerprint": fingerprint, "source": source, "description": description,
                  "var_config": asdict(var_config), "vqvae_config": asdict(vqvae_config)},
        **spec_json,
        "runtime": RUNTIME_NOTES,
        "files": files,
        "weights": weights,
        "versions": library_versions(),
        "validation": validation,
    }


def _config(cls, raw: dict):
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def spec_from_manifest(manifest: dict, where: str = MANIFEST) -> ExportSpec:
    """The spec an export was made with (graphs, dims, profiles), rebuilt from its manifest and
    checked against the declarations the manifest holds."""
    try:
        prune = manifest["prune_range"]
        spec = build_spec(_config(VARConfig, manifest["model"]["var_config"]),
                          _config(VQVAEConfig, manifest["model"]["vqvae_config"]),
                          precision=manifest["precision"], max_batch=manifest["max_batch"],
                          prune=PruneRange(first_scale=prune["first_scale"], min_keep_fraction=prune["min_keep_fraction"],
                                           fill_mode=prune["upsample_mode"]),
                          opset=manifest["opset"])
    except (KeyError, TypeError) as e:
        raise InvalidArgument(f"{where}: incomplete manifest ({type(e).__name__}: {e})") from None
    if spec.to_json()["graphs"] != manifest.get("graphs"):
        raise ExportError(f"{where}: its graph declarations differ from the spec this nova-deploy builds for the "
                          f"same options (exported by another version?)")
    return spec


def open_export(path, **checks) -> ExportDir:
    """The export directory through the one loader (ExportDir.open: schema, paths inside it, sizes
    and hashes; `checks` are its options), with the spec its manifest declares."""
    return ExportDir.open(path, read_spec=spec_from_manifest, **checks)
