"""VQVAE of VAR: encoder, multi-scale residual quantizer, decoder (official key layout)."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from nova_deploy.models.quantizer import VectorQuantizer2
from nova_deploy.models.vqvae_blocks import Decoder, Encoder

OFFICIAL_CH_MULT = (1, 1, 2, 2, 4)  # 16x downsampling, from LDM's vq-f16


class VQVAE(nn.Module):
    def __init__(self, vocab_size: int = 4096, z_channels: int = 32, ch: int = 128, dropout: float = 0.0,
                 beta: float = 0.25, using_znorm: bool = False, quant_conv_ks: int = 3, quant_resi: float = 0.5,
                 share_quant_resi: int = 4, default_qresi_counts: int = 0,
                 v_patch_nums: Sequence[int] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16), test_mode: bool = True,
                 ch_mult: Sequence[int] = OFFICIAL_CH_MULT, num_res_blocks: int = 2, norm_groups: int = 32):
        super().__init__()
        self.V = self.vocab_size = vocab_size
        self.Cvae = z_channels
        self.ch_mult = tuple(ch_mult)
        self.downsample = 2 ** (len(self.ch_mult) - 1)
        # norm_groups: GroupNorm groups (official 32). With narrow channels, 32 groups of one channel
        # act as instance norm and erase each image's colour, which a small model cannot recover.
        dd = dict(ch=ch, ch_mult=self.ch_mult, num_res_blocks=num_res_blocks, z_channels=z_channels, dropout=dropout,
                  norm_groups=norm_groups)
        self.encoder = Encoder(**dd)
        self.decoder = Decoder(**dd)
        self.quantize = VectorQuantizer2(
            vocab_size=vocab_size, Cvae=z_channels, using_znorm=using_znorm, beta=beta,
            default_qresi_counts=default_qresi_counts, v_patch_nums=v_patch_nums,
            quant_resi=quant_resi, share_quant_resi=share_quant_resi,
        )
        self.quant_conv = nn.Conv2d(z_channels, z_channels, quant_conv_ks, stride=1, padding=quant_conv_ks // 2)
        self.post_quant_conv = nn.Conv2d(z_channels, z_channels, quant_conv_ks, stride=1, padding=quant_conv_ks // 2)
        if test_mode:  # inference copy: frozen, like the official test_mode
            self.eval()
            self.requires_grad_(False)

    @property
    def image_size(self) -> int:
        return self.quantize.v_patch_nums[-1] * self.downsample

    def forward(self, img_B3HW: torch.Tensor):
        """Training path: reconstruction and VQ loss."""
        f_hat, vq_loss = self.quantize(self.quant_conv(self.encoder(img_B3HW)))
        return self.decoder(self.post_quant_conv(f_hat)), vq_loss

    def fhat_to_img(self, f_hat: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(f_hat)).clamp_(-1, 1)

    def img_to_idxBl(self, img_B3HW: torch.Tensor, v_patch_nums: Optional[Sequence[int]] = None) -> List[torch.Tensor]:
        f = self.quant_conv(self.encoder(img_B3HW))
        return self.quantize.f_to_idxBl_or_fhat(f, to_fhat=False, v_patch_nums=v_patch_nums)

    def idxBl_to_img(self, ms_idx_Bl: List[torch.Tensor], same_shape: bool = True, last_one: bool = False):
        if not same_shape:
            raise NotImplementedError("only same_shape=True (every scale upsampled to the last) is supported")
        B = ms_idx_Bl[0].shape[0]
        ms_h_BChw = []
        for idx_Bl in ms_idx_Bl:
            pn = round(idx_Bl.shape[1] ** 0.5)
            ms_h_BChw.append(self.quantize.embedding(idx_Bl).transpose(1, 2).view(B, self.Cvae, pn, pn))
        f_hats = self.quantize.embed_to_fhat(ms_h_BChw, last_one=last_one)
        if last_one:
            return self.fhat_to_img(f_hats)
        return [self.fhat_to_img(f) for f in f_hats]

    def img_to_reconstructed_img(self, img_B3HW: torch.Tensor, last_one: bool = True):
        f = self.quant_conv(self.encoder(img_B3HW))
        f_hats = self.quantize.f_to_idxBl_or_fhat(f, to_fhat=True)
        return self.fhat_to_img(f_hats[-1]) if last_one else [self.fhat_to_img(f) for f in f_hats]
