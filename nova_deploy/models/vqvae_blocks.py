"""Convolutional encoder and decoder of the VAR VQVAE (the LDM vq-f16 design).

Module and attribute names follow the official checkpoints (`encoder.down.0.block.0.norm1`, ...),
so an official state dict loads without renaming.
"""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6, affine=True)


class Upsample2x(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x_BChw: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x_BChw, scale_factor=2, mode="nearest"))


class Downsample2x(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x_BChw: torch.Tensor) -> torch.Tensor:
        # asymmetric padding: the official checkpoints were trained with it
        return self.conv(F.pad(x_BChw, pad=(0, 1, 0, 1), mode="constant", value=0))


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0, groups: int = 32):
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout) if dropout > 1e-6 else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.nin_shortcut = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x_BChw: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x_BChw)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.nin_shortcut(x_BChw) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention; the op order mirrors the official one so that
    quantizer token ids, which are argmins over these features, match exactly."""

    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        self.C = channels
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.w_ratio = int(channels) ** (-0.5)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x_BChw: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(self.norm(x_BChw))
        B, _, H, W = qkv.shape
        q, k, v = qkv.reshape(B, 3, self.C, H, W).unbind(1)
        q_BNC = q.reshape(B, self.C, H * W).permute(0, 2, 1)
        w_BNN = torch.bmm(q_BNC, k.reshape(B, self.C, H * W)).mul(self.w_ratio)
        w_BNN = F.softmax(w_BNN, dim=2)
        h = torch.bmm(v.reshape(B, self.C, H * W), w_BNN.permute(0, 2, 1))
        return x_BChw + self.proj_out(h.view(B, self.C, H, W))


class Encoder(nn.Module):
    def __init__(self, *, ch: int, ch_mult: Sequence[int], num_res_blocks: int, z_channels: int,
                 dropout: float = 0.0, in_channels: int = 3, using_sa: bool = True, using_mid_sa: bool = True,
                 norm_groups: int = 32):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, stride=1, padding=1)
        in_ch_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        block_in = ch
        for i_level in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in, block_out = ch * in_ch_mult[i_level], ch * ch_mult[i_level]
            for _ in range(num_res_blocks):
                block.append(ResnetBlock(block_in, block_out, dropout, norm_groups))
                block_in = block_out
                if i_level == self.num_resolutions - 1 and using_sa:
                    attn.append(AttnBlock(block_in, norm_groups))
            down = nn.Module()
            down.block, down.attn = block, attn
            if i_level != self.num_resolutions - 1:
                down.downsample = Downsample2x(block_in)
            self.down.append(down)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, dropout, norm_groups)
        self.mid.attn_1 = AttnBlock(block_in, norm_groups) if using_mid_sa else nn.Identity()
        self.mid.block_2 = ResnetBlock(block_in, block_in, dropout, norm_groups)
        self.norm_out = group_norm(block_in, norm_groups)
        self.conv_out = nn.Conv2d(block_in, z_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, img_B3HW: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(img_B3HW)
        for i_level, down in enumerate(self.down):
            for i_block in range(self.num_res_blocks):
                h = down.block[i_block](h)
                if len(down.attn) > 0:
                    h = down.attn[i_block](h)
            if i_level != self.num_resolutions - 1:
                h = down.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, *, ch: int, ch_mult: Sequence[int], num_res_blocks: int, z_channels: int,
                 dropout: float = 0.0, in_channels: int = 3, using_sa: bool = True, using_mid_sa: bool = True,
                 norm_groups: int = 32):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, kernel_size=3, stride=1, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, dropout, norm_groups)
        self.mid.attn_1 = AttnBlock(block_in, norm_groups) if using_mid_sa else nn.Identity()
        self.mid.block_2 = ResnetBlock(block_in, block_in, dropout, norm_groups)
        self.up = nn.ModuleList()
        for i_level in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks + 1):
                block.append(ResnetBlock(block_in, block_out, dropout, norm_groups))
                block_in = block_out
                if i_level == self.num_resolutions - 1 and using_sa:
                    attn.append(AttnBlock(block_in, norm_groups))
            up = nn.Module()
            up.block, up.attn = block, attn
            if i_level != 0:
                up.upsample = Upsample2x(block_in)
            self.up.insert(0, up)  # keep official indices: up[0] is the finest level
        self.norm_out = group_norm(block_in, norm_groups)
        self.conv_out = nn.Conv2d(block_in, in_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, z_BChw: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z_BChw))))
        for i_level in reversed(range(self.num_resolutions)):
            up = self.up[i_level]
            for i_block in range(self.num_res_blocks + 1):
                h = up.block[i_block](h)
                if len(up.attn) > 0:
                    h = up.attn[i_block](h)
            if i_level != 0:
                h = up.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
