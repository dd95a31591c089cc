"""Reading, checking and writing VAR / VQVAE checkpoints.

Accepted: official `.pth` state dicts (read with `torch.load(weights_only=True)`, never a full
unpickle) and `.safetensors` (ours carry their config in the metadata). Loading is strict; a
mismatch is reported in one line naming the first missing, unexpected and mis-shaped keys and
the preset that would fit.
"""
import json
import os
import pickle
import re
import warnings
from dataclasses import asdict, fields
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from nova_deploy.atomic_write import write_atomic
from nova_deploy.errors import CheckpointError
from nova_deploy.models.build import build_var, build_vqvae
from nova_deploy.models.presets import PATCH_NUMS_256, PRESETS, VARConfig, VQVAEConfig
from nova_deploy.models.var import VAR
from nova_deploy.models.vqvae import VQVAE

META_KIND, META_CONFIG = "nova_deploy.kind", "nova_deploy.config"
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def read_state_dict(path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Tensors and metadata of a checkpoint file; CheckpointError naming the file on any failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except Exception as e:  # safetensors raises several types for a bad header or a short file
            raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(e)})") from None
    if path.suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(f"{path}: unknown checkpoint type {path.suffix!r}; valid: .safetensors, "
                              + ", ".join(PICKLE_SUFFIXES))
    try:
        with warnings.catch_warnings():
            # torch warns in two lines that it may not read this pickle protocol; if it cannot, the
            # error below says so in one line, and if it can, the warning is noise
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused to unpickle: the file holds more than tensors "
                              f"(code or objects); only plain state dicts are loaded ({_unpickler_reason(e)})") from None
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({_first_line(e)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict (expected a mapping of names to tensors)")
    return state, {}


def _unpickler_reason(e: Exception) -> str:
    """What torch's weights-only unpickler objected to, without the paragraph around it that
    suggests weights_only=False."""
    text = str(e)
    _, marker, reason = text.partition("WeightsUnpickler error:")
    reason = " ".join(reason.split("Check the documentation")[0].split())
    return reason[:160] if marker and reason else _first_line(e)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:160]


def checkpoint_kind(state: Dict[str, torch.Tensor]) -> str:
    if "class_emb.weight" in state or "pos_1LC" in state:
        return "var"
    if "quantize.embedding.weight" in state or "encoder.conv_in.weight" in state:
        return "vqvae"
    return "unknown"


# ---------------------------------------------------------------- config inference
def infer_var_config(state: Dict[str, torch.Tensor], meta: Dict[str, str]) -> VARConfig:
    if META_CONFIG in meta and meta.get(META_KIND) == "var":
        return _config_from_json(VARConfig, meta[META_CONFIG])
    try:
        C = state["word_embed.weight"].shape[0]
        depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
        heads = state["blocks.0.attn.scale_mul_1H11"].shape[1] if "blocks.0.attn.scale_mul_1H11" in state else C // 64
        counts = torch.bincount(state["lvl_1L"].flatten().long()).tolist()
        patch_nums = tuple(round(c ** 0.5) for c in counts)
        return VARConfig(
            depth=depth, embed_dim=C, num_heads=heads, num_classes=state["class_emb.weight"].shape[0] - 1,
            patch_nums=patch_nums, shared_aln="shared_ada_lin.1.weight" in state,
            attn_l2_norm="blocks.0.attn.scale_mul_1H11" in state,
            mlp_ratio=state["blocks.0.ffn.fc1.weight"].shape[0] / C,
        )
    except (KeyError, IndexError) as e:
        raise CheckpointError(f"not a VAR checkpoint: key {e} missing") from None


def infer_vqvae_config(state: Dict[str, torch.Tensor], meta: Dict[str, str],
                       patch_nums: Optional[Tuple[int, ...]] = None) -> VQVAEConfig:
    if META_CONFIG in meta and meta.get(META_KIND) == "vqvae":
        return _config_from_json(VQVAEConfig, meta[META_CONFIG])
    try:
        ch = state["encoder.conv_in.weight"].shape[0]
        levels = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.down.")})
        ch_mult = tuple(state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in levels)
        n_blocks = len({k.split(".")[4] for k in state if k.startswith("encoder.down.0.block.")})
        if any(k.startswith("quantize.quant_resi.qresi_ls.") for k in state):
            share = len({k.split(".")[3] for k in state if k.startswith("quantize.quant_resi.qresi_ls.")})
        elif "quantize.quant_resi.qresi.weight" in state:
            share = 1
        else:
            share = 0
        n_scales = state["quantize.ema_vocab_hit_SV"].shape[0]
        if patch_nums is None:
            if n_scales != len(PATCH_NUMS_256):
                raise CheckpointError(f"cannot tell the scale schedule of this VQVAE ({n_scales} scales); "
                                      "load it together with its VAR checkpoint")
            patch_nums = PATCH_NUMS_256
        return VQVAEConfig(vocab_size=state["quantize.embedding.weight"].shape[0],
                           z_channels=state["quantize.embedding.weight"].shape[1], ch=ch, share_quant_resi=share,
                           v_patch_nums=tuple(patch_nums), ch_mult=ch_mult, num_res_blocks=n_blocks)
    except (KeyError, IndexError) as e:
        raise CheckpointError(f"not a VQVAE checkpoint: key {e} missing") from None


def _config_from_json(cls, text: str):
    raw = json.loads(text)
    known = {f.name for f in fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known})


def matching_preset(cfg) -> Optional[str]:
    for name, p in PRESETS.items():
        if p.var == cfg or p.vae == cfg:
            return name
    return None


# ---------------------------------------------------------------- strict loading
def check_fits(model: torch.nn.Module, state: Dict[str, torch.Tensor], path, what: str) -> None:
    """Raise one CheckpointError listing the first missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                 if k in state and state[k].shape != v.shape]
    if missing or unexpected or misshaped:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                parts.append(f"{len(items)} {label} ({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})")
        raise CheckpointError(f"{path}: does not fit the {what}: " + "; ".join(parts))


def _check_kind(state, path, want: str) -> None:
    kind = checkpoint_kind(state)
    if kind != want:
        got = {"var": "a VAR checkpoint", "vqvae": "a VQVAE checkpoint"}.get(kind, "neither a VAR nor a VQVAE checkpoint")
        raise CheckpointError(f"{path}: expected a {want.upper()} checkpoint, got {got}")


def load_models(var_path, vae_path, expect_var: Optional[VARConfig] = None, device="cpu") -> Tuple[VAR, VQVAE]:
    """Both models, strictly loaded, in eval mode, frozen. expect_var: fail unless the VAR has this config."""
    var_state, var_meta = read_state_dict(var_path)
    _check_kind(var_state, var_path, "var")
    vae_state, vae_meta = read_state_dict(vae_path)
    _check_kind(vae_state, vae_path, "vqvae")
    var_cfg = infer_var_config(var_state, var_meta)
    if expect_var is not None and var_cfg != expect_var:
        fit = matching_preset(var_cfg)
        raise CheckpointError(f"{var_path}: holds a depth-{var_cfg.depth} width-{var_cfg.embed_dim} VAR, "
                              f"expected depth {expect_var.depth} width {expect_var.embed_dim}"
                              + (f"; it fits preset {fit!r}" if fit else ""))
    vae_cfg = infer_vqvae_config(vae_state, vae_meta, patch_nums=var_cfg.patch_nums)
    vae = build_vqvae(vae_cfg)
    check_fits(vae, vae_state, vae_path, f"VQVAE (vocab {vae_cfg.vocab_size}, Cvae {vae_cfg.z_channels}, ch {vae_cfg.ch})")
    vae.load_state_dict(vae_state, strict=True)
    if var_state["word_embed.weight"].shape[1] != vae_cfg.z_channels or var_state["head.weight"].shape[0] != vae_cfg.vocab_size:
        raise CheckpointError(f"{var_path}: VAR expects a VQVAE with Cvae {var_state['word_embed.weight'].shape[1]} "
                              f"and vocab {var_state['head.weight'].shape[0]}, but {vae_path} has Cvae "
                              f"{vae_cfg.z_channels} and vocab {vae_cfg.vocab_size}")
    with torch.device("meta"):  # no second copy of the weights: the loaded tensors are assigned
        var = build_var(var_cfg, vae)
    fit = matching_preset(var_cfg)
    check_fits(var, var_state, var_path, f"VAR preset {fit or 'custom'} (depth {var_cfg.depth}, width {var_cfg.embed_dim})")
    var.load_state_dict(var_state, strict=True, assign=True)
    var.eval().requires_grad_(False)
    return var.to(device), vae.to(device)


# ---------------------------------------------------------------- writing
def save_safetensors(model: torch.nn.Module, cfg, kind: str, path, extra_meta: Optional[Dict[str, str]] = None) -> Path:
    """Official key layout plus our config (and extra_meta) in the metadata; atomic (temporary name, then rename)."""
    path = Path(path)
    meta = {**(extra_meta or {}), META_KIND: kind, META_CONFIG: json.dumps(asdict(cfg))}
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return write_atomic(path, lambda tmp: _save_file(tensors, tmp, meta))


def _save_file(tensors: Dict[str, torch.Tensor], path: Path, meta: Dict[str, str]) -> None:
    """safetensors' save_file, its I/O failures raised as the OSError they are (it reports them as
    SafetensorError "... (os error N)"), so that they become one line like every other write."""
    try:
        save_file(tensors, str(path), metadata=meta)
    except SafetensorError as e:
        found = re.search(r"os error (\d+)", str(e))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(path)) from None


def convert_checkpoint(src, dst, vae_patch_nums: Optional[Tuple[int, ...]] = None) -> Tuple[str, object]:
    """Official .pth -> .safetensors with the inferred config in the metadata."""
    state, meta = read_state_dict(src)
    kind = checkpoint_kind(state)
    if kind == "var":
        cfg = infer_var_config(state, meta)
        with torch.device("meta"):
            probe = build_var(cfg, build_vqvae(VQVAEConfig(vocab_size=state["head.weight"].shape[0],
                                                           z_channels=state["word_embed.weight"].shape[1],
                                                           ch=32, v_patch_nums=cfg.patch_nums)))
    elif kind == "vqvae":
        cfg = infer_vqvae_config(state, meta, patch_nums=vae_patch_nums)
        with torch.device("meta"):
            probe = build_vqvae(cfg)
    else:
        raise CheckpointError(f"{src}: neither a VAR nor a VQVAE checkpoint")
    check_fits(probe, state, src, kind.upper())
    tensors = {k: v.contiguous() for k, v in state.items()}
    write_atomic(dst, lambda tmp: _save_file(tensors, tmp, {META_KIND: kind, META_CONFIG: json.dumps(asdict(cfg))}))
    return kind, cfg
