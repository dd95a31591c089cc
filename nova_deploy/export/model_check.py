"""Does an export hold this model? What `validate` checks before it runs the graphs.

A manifest's own hashes only say the files are the ones it lists; someone (or something) that
rewrites a file and its hash passes them. These checks compare the export with the model itself:
- the manifest's model configs (var_config, vqvae_config) equal the model's (`configs_of`):
  the runtime reads the class count, vocabulary and scales from there;
- codebook.npy equals the quantizer's embedding (the runtime embeds sampled tokens with it; no
  graph reads it, so the graph runs cannot notice a changed codebook);
- every tensor the graphs take from weights.bin equals a tensor of the model at the export's
  precision (the graph modules' parameters and buffers as traced, or their transpose, which is how
  the exporter stores MatMul weights), or one of the constants the exporter folds from them
  (`_folded_constants`). A changed weight is found however small the change, not only when it
  moves an output past the validation tolerance.
"""
import hashlib
import json
from dataclasses import asdict
from typing import Dict, Iterator, List, Tuple

import numpy as np
import torch

from nova_deploy.artifacts.export_dir import ExportDir
from nova_deploy.artifacts.names import CODEBOOK, WEIGHTS_FILE
from nova_deploy.errors import NovaDeployError
from nova_deploy.export.graphs import graph_module
from nova_deploy.export.precision import to_precision
from nova_deploy.export.shared_weights import external_initializers, map_weights_file
from nova_deploy.export.spec import ExportSpec
from nova_deploy.models.presets import VARConfig, VQVAEConfig
from nova_deploy.models.quantizer import PhiPartiallyShared, PhiShared
from nova_deploy.models.var import VAR
from nova_deploy.models.vqvae import VQVAE

Mismatch = Tuple[str, str]  # (what: a file or manifest field, message)
SHOWN = 5  # weights.bin mismatches listed one by one; the rest are counted


def configs_of(var: VAR, vae: VQVAE) -> Tuple[VARConfig, VQVAEConfig]:
    """The configs of built models (whatever file or preset they came from)."""
    blk = var.blocks[0]
    var_cfg = VARConfig(depth=var.depth, embed_dim=var.C, num_heads=var.num_heads, num_classes=var.num_classes,
                        patch_nums=tuple(var.patch_nums), norm_eps=blk.ln_wo_grad.eps, shared_aln=blk.shared_aln,
                        attn_l2_norm=blk.attn.attn_l2_norm, mlp_ratio=blk.ffn.fc1.out_features / var.C)
    qr = vae.quantize.quant_resi
    if isinstance(qr, PhiPartiallyShared):
        share = len(qr.qresi_ls)
    elif isinstance(qr, PhiShared):
        share = 1
    else:  # PhiNonShared: one Phi per scale
        share = 0
    vae_cfg = VQVAEConfig(vocab_size=vae.vocab_size, z_channels=vae.Cvae, ch=vae.encoder.conv_in.out_channels,
                          share_quant_resi=share, v_patch_nums=tuple(vae.quantize.v_patch_nums), ch_mult=vae.ch_mult,
                          num_res_blocks=vae.decoder.num_res_blocks, norm_groups=vae.decoder.norm_out.num_groups)
    return var_cfg, vae_cfg


def export_mismatches(export: ExportDir, spec: ExportSpec, var: VAR, vae: VQVAE) -> List[Mismatch]:
    """Every way the export differs from the model (empty when it holds exactly this model)."""
    found = config_mismatches(export.manifest, var, vae)
    found += codebook_mismatches(export, vae)
    found += weight_mismatches(export, spec, var, vae)
    return found


def config_mismatches(manifest: dict, var: VAR, vae: VQVAE) -> List[Mismatch]:
    found = []
    for key, cfg in zip(("var_config", "vqvae_config"), configs_of(var, vae)):
        ours = json.loads(json.dumps(asdict(cfg)))  # tuples as lists, as the manifest stores them
        theirs = manifest["model"][key]
        for field in sorted(set(ours) | set(theirs)):
            if ours.get(field) != theirs.get(field):
                found.append((f"model.{key}.{field}", f"{theirs.get(field)!r} in the manifest, "
                                                       f"{ours.get(field)!r} in the model"))
    return found


def codebook_mismatches(export: ExportDir, vae: VQVAE) -> List[Mismatch]:
    try:
        codebook = export.codebook
    except NovaDeployError as e:
        return [(CODEBOOK, str(e))]
    embedding = vae.quantize.embedding.weight.detach().float().cpu().numpy()
    if codebook.shape != embedding.shape or not np.array_equal(codebook, embedding):
        return [(CODEBOOK, "differs from the model's quantizer embedding (the runtime embeds sampled tokens "
                           "with it: images would differ)")]
    return []


def weight_mismatches(export: ExportDir, spec: ExportSpec, var: VAR, vae: VQVAE) -> List[Mismatch]:
    try:
        weights = map_weights_file(export.file(WEIGHTS_FILE))
        places: Dict[Tuple[int, int], str] = {}  # (offset, length) -> the first initializer stored there
        for g in spec.graphs:
            for name, offset, length, _, _ in external_initializers(export.file(g.file)):
                places.setdefault((offset, length), f"{g.file}:{name}")
    except NovaDeployError as e:  # a missing file: the file checks report it too
        return [(WEIGHTS_FILE, str(e))]
    except Exception as e:  # a graph onnx cannot parse: its structure check reports it
        return [(WEIGHTS_FILE, f"cannot list the graphs' weights: {str(e).strip()[:200]}")]
    known = set(_digests(model_tensors(spec, var, vae)))
    bad = []
    for (offset, length), where in sorted(places.items()):
        if offset + length > weights.size:
            bad.append(f"{where} at {offset}+{length} lies past the end ({weights.size} bytes)")
        elif hashlib.sha256(weights[offset:offset + length]).hexdigest() not in known:
            bad.append(f"{where} at {offset}+{length}")
    if not bad:
        return []
    more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    return [(WEIGHTS_FILE, f"{len(bad)} of {len(places)} stored tensors equal no tensor of the model at "
                           f"{spec.precision}: {'; '.join(bad[:SHOWN])}{more}")]


def model_tensors(spec: ExportSpec, var: VAR, vae: VQVAE) -> Iterator[torch.Tensor]:
    """What the exporter may store: each graph module's parameters and buffers at the export
    precision (the head and the VQVAE stay fp32) and the constants it folds from them."""
    lp = to_precision(var, spec.precision)
    modules = []  # kept alive to the end: a freed tensor's id() may be reused by the next module's
    seen = set()
    with torch.no_grad():
        for g in spec.graphs:
            modules.append(graph_module(g, spec, lp, vae))  # the scale graphs share lp's tensors
            for t in list(modules[-1].parameters()) + list(modules[-1].buffers()):
                if id(t) not in seen:
                    seen.add(id(t))
                    yield t
        yield from _folded_constants(lp)


def _folded_constants(var: VAR) -> Iterator[torch.Tensor]:
    """Constants the ONNX exporter computes from several parameters at trace time and stores as
    one tensor: each block's q/k/v bias (SelfAttention.qkv_BHlc concatenates it on every call),
    the level embedding of every token position (VAR.lvl_pos_1LC's gather; fp32 graphs) and
    each scale's slice of level plus position embedding (VAR.next_token_map; fp16/bf16 graphs)."""
    for blk in var.blocks:
        yield torch.cat((blk.attn.q_bias, blk.attn.zero_k_bias, blk.attn.v_bias))
    yield var.lvl_embed(var.lvl_1L)
    lvl_pos = var.lvl_pos_1LC()
    for begin, end in var.begin_ends:
        yield lvl_pos[:, begin:end]


def _digests(tensors) -> Iterator[str]:
    """sha256 of each tensor's bytes and, for matrices, of its transpose's."""
    for t in tensors:
        t = t.detach().cpu()
        for form in (t, t.t()) if t.dim() == 2 else (t,):
            yield hashlib.sha256(form.contiguous().reshape(-1).view(torch.uint8).numpy()).hexdigest()
