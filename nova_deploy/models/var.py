"""VAR: class-conditional next-scale prediction (FoundationVision/VAR), official key layout.

Besides the official teacher-forcing `forward`, the model exposes its inference as explicit steps
with explicit state (the official `autoregressive_infer_cfg` is `nova_deploy.sampler.autoregressive_infer_cfg`,
a function over these steps, so that the model does not import the loop that samples from it):
`condition` -> `first_token_map` -> `scale_step` (per scale, K/V prefix in, new K/V out)
-> `next_token_map`. The sampler, the exporter and NOVA are written against those steps.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from nova_deploy.models.var_blocks import AdaLNBeforeHead, AdaLNSelfAttn, LayerKeep
from nova_deploy.models.vqvae import VQVAE


class SharedAdaLin(nn.Linear):
    def forward(self, cond_BD: torch.Tensor) -> torch.Tensor:
        C = self.weight.shape[0] // 6
        return super().forward(cond_BD).view(-1, 1, 6, C)  # B16C


@dataclass
class Conditioning:
    """Everything the scale steps need from the class labels, computed once per batch.

    cond_BD: class embedding rows (conditional half, then the null class), 2B x D.
    ada_NB6C: per block AdaLN gamma1, gamma2, scale1, scale2, shift1, shift2 (depth, 2B, 6, C).
    head_ada_B2C: AdaLN scale and shift of the head norm (2B, 2, C).
    """
    cond_BD: torch.Tensor
    ada_NB6C: torch.Tensor
    head_ada_B2C: torch.Tensor


@dataclass
class ScaleOutput:
    logits_BlV: torch.Tensor
    k_new: List[torch.Tensor]  # per layer, B H k c (kept tokens only)
    v_new: List[torch.Tensor]
    # per layer, B l C, gated branch output on every token; None where an executor does not have
    # them (an exported scale emits them only where the next scale can be pruned)
    attn_branch: Optional[List[torch.Tensor]]
    ffn_branch: Optional[List[torch.Tensor]]


class VAR(nn.Module):
    def __init__(self, vae_local: VQVAE, num_classes: int = 1000, depth: int = 16, embed_dim: int = 1024,
                 num_heads: int = 16, mlp_ratio: float = 4.0, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, norm_eps: float = 1e-6, shared_aln: bool = False,
                 cond_drop_rate: float = 0.1, attn_l2_norm: bool = False,
                 patch_nums: Sequence[int] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
                 flash_if_available: bool = True, fused_if_available: bool = True):
        super().__init__()
        # flash_if_available / fused_if_available are accepted so official call sites port unchanged;
        # attention here always goes through torch's scaled_dot_product_attention.
        if drop_path_rate:
            raise ValueError("drop_path_rate is not supported (inference toolchain); use 0")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be a multiple of num_heads {num_heads}")
        self.Cvae, self.V = vae_local.Cvae, vae_local.vocab_size
        self.depth, self.C, self.D, self.num_heads = depth, embed_dim, embed_dim, num_heads
        self.cond_drop_rate = cond_drop_rate
        self.patch_nums: Tuple[int, ...] = tuple(patch_nums)
        self.L = sum(pn ** 2 for pn in self.patch_nums)
        self.first_l = self.patch_nums[0] ** 2
        self.begin_ends = []
        cur = 0
        for pn in self.patch_nums:
            self.begin_ends.append((cur, cur + pn ** 2))
            cur += pn ** 2
        self.num_stages_minus_1 = len(self.patch_nums) - 1
        # a tuple, so the VQVAE is not registered as a submodule and stays out of the state dict
        self.vae_proxy: Tuple[VQVAE] = (vae_local,)
        self.vae_quant_proxy = (vae_local.quantize,)

        init_std = math.sqrt(1 / self.C / 3)
        self.word_embed = nn.Linear(self.Cvae, self.C)
        self.num_classes = num_classes
        self.class_emb = nn.Embedding(num_classes + 1, self.C)  # last row: the null class of CFG
        self.pos_start = nn.Parameter(torch.empty(1, self.first_l, self.C))
        self.pos_1LC = nn.Parameter(torch.empty(1, self.L, self.C))
        self.lvl_embed = nn.Embedding(len(self.patch_nums), self.C)
        for t in (self.class_emb.weight, self.pos_start, self.pos_1LC, self.lvl_embed.weight):
            nn.init.trunc_normal_(t.data, mean=0, std=init_std)

        self.shared_ada_lin = nn.Sequential(nn.SiLU(), SharedAdaLin(self.D, 6 * self.C)) if shared_aln else nn.Identity()
        self.blocks = nn.ModuleList([
            AdaLNSelfAttn(embed_dim=self.C, cond_dim=self.D, shared_aln=shared_aln, num_heads=num_heads,
                          mlp_ratio=mlp_ratio, norm_eps=norm_eps, drop=drop_rate, attn_drop=attn_drop_rate,
                          attn_l2_norm=attn_l2_norm)
            for _ in range(depth)
        ])

        # block-causal mask of teacher forcing: a token sees its own scale and every earlier one
        d = torch.cat([torch.full((pn * pn,), i) for i, pn in enumerate(self.patch_nums)]).view(1, self.L, 1)
        dT = d.transpose(1, 2)
        self.register_buffer("lvl_1L", dT[:, 0].contiguous())
        self.register_buffer("attn_bias_for_masking",
                             torch.where(d >= dT, 0.0, -torch.inf).reshape(1, 1, self.L, self.L).contiguous())
        self.head_nm = AdaLNBeforeHead(self.C, self.D, norm_eps=norm_eps)
        self.head = nn.Linear(self.C, self.V)

    @property
    def vae(self) -> VQVAE:
        return self.vae_proxy[0]

    # ------------------------------------------------------------------ explicit inference steps
    def condition(self, label_B: torch.Tensor) -> Conditioning:
        """Labels of the B samples -> conditioning of the 2B CFG rows (conditional, then null)."""
        labels_2B = torch.cat((label_B, torch.full_like(label_B, fill_value=self.num_classes)), dim=0)
        cond_BD = self.class_emb(labels_2B)
        gss = self.shared_ada_lin(cond_BD)
        ada = torch.stack([torch.stack(b.ada(gss), dim=1).squeeze(2) for b in self.blocks])  # depth,2B,6,C
        head_ada = self.head_nm.ada_lin(cond_BD).view(-1, 2, self.C)
        return Conditioning(cond_BD=cond_BD, ada_NB6C=ada, head_ada_B2C=head_ada)

    def lvl_pos_1LC(self) -> torch.Tensor:
        return self.lvl_embed(self.lvl_1L) + self.pos_1LC

    def first_token_map(self, cond: Conditioning) -> torch.Tensor:
        B2 = cond.cond_BD.shape[0]
        return (cond.cond_BD.unsqueeze(1).expand(B2, self.first_l, -1)
                + self.pos_start.expand(B2, self.first_l, -1)
                + self.lvl_pos_1LC()[:, :self.first_l])

    def next_token_map(self, si_next: int, f_hat_down_BChw: torch.Tensor) -> torch.Tensor:
        """Area-downsampled f_hat of B samples -> input tokens of scale si_next for the 2B CFG rows."""
        B = f_hat_down_BChw.shape[0]
        bg, ed = self.begin_ends[si_next]
        x = self.word_embed(f_hat_down_BChw.view(B, self.Cvae, -1).transpose(1, 2)) + self.lvl_pos_1LC()[:, bg:ed]
        return x.repeat(2, 1, 1)

    def logits(self, x_BlC: torch.Tensor, head_ada_B2C: torch.Tensor) -> torch.Tensor:
        scale, shift = head_ada_B2C.unsqueeze(1).unbind(2)
        h = self.head_nm.ln_wo_grad(x_BlC.float()).mul(scale.add(1)).add_(shift)
        return self.head(h.float()).float()

    def scale_step(self, x_BlC: torch.Tensor, cond: Conditioning,
                   k_prefix: Sequence[Optional[torch.Tensor]], v_prefix: Sequence[Optional[torch.Tensor]],
                   keeps: Optional[Sequence[Optional[LayerKeep]]] = None) -> ScaleOutput:
        """One scale through every block and the head, with the previous scales' K/V given explicitly."""
        out = ScaleOutput(logits_BlV=None, k_new=[], v_new=[], attn_branch=[], ffn_branch=[])
        for i, blk in enumerate(self.blocks):
            ada = cond.ada_NB6C[i].unsqueeze(1).unbind(2)
            keep = keeps[i] if keeps is not None else None
            x_BlC, k, v, a, f = blk.step(x_BlC, ada, k_prefix[i], v_prefix[i], keep)
            out.k_new.append(k)
            out.v_new.append(v)
            out.attn_branch.append(a)
            out.ffn_branch.append(f)
        out.logits_BlV = self.logits(x_BlC, cond.head_ada_B2C)
        return out

    # ------------------------------------------------------------------ official entry points
    def get_logits(self, h: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_nm(h.float(), cond_BD).float()).float()

    def forward(self, label_B: torch.Tensor, x_BLCv_wo_first_l: torch.Tensor) -> torch.Tensor:
        """Teacher forcing with the block-causal mask; returns logits B L V. The input may stop after
        any scale: under the block-causal mask the first scales' logits do not depend on later tokens,
        so a prefix of the pyramid trains its scales at a fraction of the cost."""
        B = x_BLCv_wo_first_l.shape[0]
        L = self.first_l + x_BLCv_wo_first_l.shape[1]
        if self.training and self.cond_drop_rate > 0:
            label_B = torch.where(torch.rand(B, device=label_B.device) < self.cond_drop_rate, self.num_classes, label_B)
        sos = cond_BD = self.class_emb(label_B)
        sos = sos.unsqueeze(1).expand(B, self.first_l, -1) + self.pos_start.expand(B, self.first_l, -1)
        x_BLC = torch.cat((sos, self.word_embed(x_BLCv_wo_first_l.float())), dim=1)
        x_BLC = x_BLC + self.lvl_embed(self.lvl_1L[:, :L].expand(B, -1)) + self.pos_1LC[:, :L]
        gss = self.shared_ada_lin(cond_BD)
        attn_bias = self.attn_bias_for_masking[:, :, :L, :L]
        for blk in self.blocks:
            x_BLC = blk(x_BLC, gss, attn_bias)
        return self.get_logits(x_BLC, cond_BD)

    def init_weights(self, init_adaln: float = 0.5, init_adaln_gamma: float = 1e-5, init_head: float = 0.02,
                     init_std: float = 0.02) -> None:
        """Official training initialisation (only used when training a model from scratch)."""
        if init_std < 0:
            init_std = (1 / self.C / 3) ** 0.5
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight.data, std=init_std)
                if m.bias is not None:
                    m.bias.data.zero_()
            elif isinstance(m, nn.Embedding):
                nn.init.trunc_normal_(m.weight.data, std=init_std)
        self.head.weight.data.mul_(init_head)
        self.head.bias.data.zero_()
        self.head_nm.ada_lin[-1].weight.data.mul_(init_adaln)
        self.head_nm.ada_lin[-1].bias.data.zero_()
        for blk in self.blocks:
            blk.attn.proj.weight.data.div_(math.sqrt(2 * self.depth))
            blk.ffn.fc2.weight.data.div_(math.sqrt(2 * self.depth))
            if blk.shared_aln:
                blk.ada_gss.data[:, :, 2:].mul_(init_adaln)
                blk.ada_gss.data[:, :, :2].mul_(init_adaln_gamma)
            else:
                blk.ada_lin[-1].weight.data[2 * self.C:].mul_(init_adaln)
                blk.ada_lin[-1].weight.data[:2 * self.C].mul_(init_adaln_gamma)
                blk.ada_lin[-1].bias.data.zero_()
