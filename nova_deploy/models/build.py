"""Construct models from configs (no weights loaded here; see nova_deploy.checkpoint)."""
from typing import Optional, Tuple

import torch

from nova_deploy.models.presets import Preset, VARConfig, VQVAEConfig
from nova_deploy.models.var import VAR
from nova_deploy.models.vqvae import VQVAE


def build_vqvae(cfg: VQVAEConfig, test_mode: bool = True) -> VQVAE:
    return VQVAE(**cfg.kwargs(), test_mode=test_mode)


def build_var(cfg: VARConfig, vae: VQVAE, cond_drop_rate: float = 0.1) -> VAR:
    return VAR(vae_local=vae, cond_drop_rate=cond_drop_rate, **cfg.kwargs())


def build_pair(preset: Preset, seed: Optional[int] = 0) -> Tuple[VAR, VQVAE]:
    """Both models of a preset with reproducible random weights (official init for VAR)."""
    if seed is not None:
        torch.manual_seed(seed)
    vae = build_vqvae(preset.vae)
    var = build_var(preset.var, vae).eval()
    var.init_weights(init_std=-1)
    var.requires_grad_(False)
    return var, vae
