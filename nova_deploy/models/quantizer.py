"""Multi-scale residual vector quantizer of VAR (official name: VectorQuantizer2).

An image feature map f is explained coarse to fine: at scale k the residual is area-downsampled
to pn_k x pn_k, quantized to token ids, embedded, bicubic-upsampled back, refined by a Phi
convolution and subtracted. f_hat is the running sum; it is what the decoder turns into pixels.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Phi(nn.Conv2d):
    """phi(h) = (1 - r) h + r conv3x3(h): the residual refinement after upsampling."""

    def __init__(self, channels: int, resi_ratio: float):
        super().__init__(channels, channels, kernel_size=3, stride=1, padding=1)
        self.resi_ratio = abs(resi_ratio)

    def forward(self, h_BChw: torch.Tensor) -> torch.Tensor:
        return h_BChw.mul(1 - self.resi_ratio) + super().forward(h_BChw).mul_(self.resi_ratio)


def _ticks(k: int) -> np.ndarray:
    # where along the scale axis (0..1) each of k shared Phi sits; official values
    return np.linspace(1 / 3 / k, 1 - 1 / 3 / k, k) if k == 4 else np.linspace(1 / 2 / k, 1 - 1 / 2 / k, k)


class PhiShared(nn.Module):
    def __init__(self, qresi: nn.Module):
        super().__init__()
        self.qresi = qresi

    def __getitem__(self, _at_from_0_to_1: float) -> nn.Module:
        return self.qresi


class PhiPartiallyShared(nn.Module):
    def __init__(self, qresi_ls: nn.ModuleList):
        super().__init__()
        self.qresi_ls = qresi_ls
        self.ticks = _ticks(len(qresi_ls))

    def __getitem__(self, at_from_0_to_1: float) -> nn.Module:
        return self.qresi_ls[int(np.argmin(np.abs(self.ticks - at_from_0_to_1)))]


class PhiNonShared(nn.ModuleList):
    def __init__(self, qresi: List[nn.Module]):
        super().__init__(qresi)
        self.ticks = _ticks(len(qresi))

    def __getitem__(self, at_from_0_to_1: float) -> nn.Module:
        return super().__getitem__(int(np.argmin(np.abs(self.ticks - at_from_0_to_1))))


class VectorQuantizer2(nn.Module):
    def __init__(self, vocab_size: int, Cvae: int, using_znorm: bool = False, beta: float = 0.25,
                 default_qresi_counts: int = 0, v_patch_nums: Sequence[int] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
                 quant_resi: float = 0.5, share_quant_resi: int = 4):
        super().__init__()
        self.vocab_size, self.Cvae, self.using_znorm, self.beta = vocab_size, Cvae, using_znorm, beta
        self.v_patch_nums: Tuple[int, ...] = tuple(v_patch_nums)
        self.quant_resi_ratio = quant_resi

        def make_phi() -> nn.Module:
            return Phi(Cvae, quant_resi) if abs(quant_resi) > 1e-6 else nn.Identity()

        if share_quant_resi == 0:  # one Phi per scale
            self.quant_resi = PhiNonShared([make_phi() for _ in range(default_qresi_counts or len(self.v_patch_nums))])
        elif share_quant_resi == 1:  # one Phi for all scales
            self.quant_resi = PhiShared(make_phi())
        else:  # share_quant_resi Phis spread over the scales (official default: 4)
            self.quant_resi = PhiPartiallyShared(nn.ModuleList([make_phi() for _ in range(share_quant_resi)]))
        # official checkpoints carry this usage statistic; kept so they load strictly
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(self.v_patch_nums), vocab_size))
        self.embedding = nn.Embedding(vocab_size, Cvae)

    def phi(self, si: int) -> nn.Module:
        return self.quant_resi[si / (len(self.v_patch_nums) - 1)]

    def nearest_ids(self, z_NC: torch.Tensor) -> torch.Tensor:
        w_VC = self.embedding.weight.data
        if self.using_znorm:
            return torch.argmax(F.normalize(z_NC, dim=-1) @ F.normalize(w_VC.T, dim=0), dim=1)
        d_NV = torch.sum(z_NC.square(), dim=1, keepdim=True) + torch.sum(w_VC.square(), dim=1, keepdim=False)
        d_NV.addmm_(z_NC, w_VC.T, alpha=-2, beta=1)
        return torch.argmin(d_NV, dim=1)

    def _upsampled_residual(self, si: int, idx_Bhw: torch.Tensor, HW: int) -> torch.Tensor:
        h_BChw = self.embedding(idx_Bhw).permute(0, 3, 1, 2)
        if si != len(self.v_patch_nums) - 1:
            h_BChw = F.interpolate(h_BChw, size=(HW, HW), mode="bicubic")
        return self.phi(si)(h_BChw.contiguous())

    def forward(self, f_BChw: torch.Tensor, return_idx: bool = False):
        """Training path: f_hat with a straight-through gradient, the VQ loss (and token ids per scale)."""
        f_BChw = f_BChw.float()
        B, C, H, W = f_BChw.shape
        f_no_grad = f_BChw.detach()
        f_rest = f_no_grad.clone()
        f_hat = torch.zeros_like(f_rest)
        SN = len(self.v_patch_nums)
        vq_loss = f_BChw.new_zeros(())
        ms_idx = []
        for si, pn in enumerate(self.v_patch_nums):
            z = F.interpolate(f_rest, size=(pn, pn), mode="area") if si != SN - 1 else f_rest
            idx_N = self.nearest_ids(z.permute(0, 2, 3, 1).reshape(-1, C))
            ms_idx.append(idx_N)
            h_BChw = self._upsampled_residual(si, idx_N.view(B, pn, pn), H)
            f_hat = f_hat + h_BChw
            f_rest = f_rest - h_BChw.detach()
            vq_loss = vq_loss + F.mse_loss(f_hat.data, f_BChw).mul(self.beta) + F.mse_loss(f_hat, f_no_grad)
        f_hat = (f_hat.data - f_no_grad).add_(f_BChw)
        if return_idx:
            return f_hat, vq_loss / SN, ms_idx
        return f_hat, vq_loss / SN

    @torch.no_grad()
    def f_to_idxBl_or_fhat(self, f_BChw: torch.Tensor, to_fhat: bool,
                           v_patch_nums: Optional[Sequence[int]] = None) -> List[torch.Tensor]:
        B, C, H, W = f_BChw.shape
        patch_nums = tuple(v_patch_nums or self.v_patch_nums)
        if patch_nums[-1] != H or H != W:
            raise ValueError(f"last patch num {patch_nums[-1]} must equal the feature map size {H}x{W}")
        f_rest = f_BChw.detach().clone()
        f_hat = torch.zeros_like(f_rest)
        out: List[torch.Tensor] = []
        SN = len(patch_nums)
        for si, pn in enumerate(patch_nums):
            z = F.interpolate(f_rest, size=(pn, pn), mode="area") if si != SN - 1 else f_rest
            idx_N = self.nearest_ids(z.permute(0, 2, 3, 1).reshape(-1, C))
            h_BChw = self._upsampled_residual(si, idx_N.view(B, pn, pn), H)
            f_hat.add_(h_BChw)
            f_rest.sub_(h_BChw)
            out.append(f_hat.clone() if to_fhat else idx_N.reshape(B, pn * pn))
        return out

    def embed_to_fhat(self, ms_h_BChw: List[torch.Tensor], last_one: bool = False):
        """Sum every scale's embedded residual, upsampled to the last scale (all_to_max_scale)."""
        B, HW = ms_h_BChw[0].shape[0], self.v_patch_nums[-1]
        f_hat = ms_h_BChw[0].new_zeros(B, self.Cvae, HW, HW, dtype=torch.float32)
        per_scale = []
        for si, h_BChw in enumerate(ms_h_BChw):
            if si < len(self.v_patch_nums) - 1:
                h_BChw = F.interpolate(h_BChw, size=(HW, HW), mode="bicubic")
            f_hat.add_(self.phi(si)(h_BChw))
            if not last_one:
                per_scale.append(f_hat.clone())
        return f_hat if last_one else per_scale

    def idxBl_to_var_input(self, gt_ms_idx_Bl: List[torch.Tensor]) -> Optional[torch.Tensor]:
        """Teacher-forcing input of VAR: for scales 1..K-1, the area-downsampled running f_hat."""
        B, C, HW = gt_ms_idx_Bl[0].shape[0], self.Cvae, self.v_patch_nums[-1]
        f_hat = gt_ms_idx_Bl[0].new_zeros(B, C, HW, HW, dtype=torch.float32)
        next_scales = []
        for si in range(len(self.v_patch_nums) - 1):
            pn = self.v_patch_nums[si]
            h_BChw = self.embedding(gt_ms_idx_Bl[si]).transpose_(1, 2).view(B, C, pn, pn)
            f_hat.add_(self.phi(si)(F.interpolate(h_BChw, size=(HW, HW), mode="bicubic")))
            pn_next = self.v_patch_nums[si + 1]
            next_scales.append(F.interpolate(f_hat, size=(pn_next, pn_next), mode="area").view(B, C, -1).transpose(1, 2))
        return torch.cat(next_scales, dim=1) if next_scales else None

    def get_next_autoregressive_input(self, si: int, SN: int, f_hat: torch.Tensor,
                                      h_BChw: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Add scale si's residual to f_hat in place; return f_hat and the next scale's input map."""
        HW = self.v_patch_nums[-1]
        if si != SN - 1:
            f_hat.add_(self.phi(si)(F.interpolate(h_BChw, size=(HW, HW), mode="bicubic")))
            pn_next = self.v_patch_nums[si + 1]
            return f_hat, F.interpolate(f_hat, size=(pn_next, pn_next), mode="area")
        f_hat.add_(self.phi(si)(h_BChw))
        return f_hat, f_hat
