"""Transformer pieces of VAR: attention with explicit KV state, FFN, AdaLN block, AdaLN head norm.

Two entry points per block:
- `forward(x, cond, attn_bias)`: the whole token pyramid at once (teacher forcing, training);
- `step(x, ada, kv_prefix, keep)`: one scale, given the previous scales' K/V explicitly, with
  optional token pruning (branches computed for kept tokens only, pruned tokens filled from a
  cache). This is the unit that the exporter traces and NOVA prunes.
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

Ada6 = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class LayerKeep:
    """Pruning inputs of one layer at one scale.

    idx_Bk: kept token positions (sorted, int64), the same count k for every row.
    attn_fill_BlC / ffn_fill_BlC: values that pruned tokens receive for the attention and FFN
        branch (after gating); positions in idx_Bk are overwritten by the computed values.
    """
    idx_Bk: torch.Tensor
    attn_fill_BlC: torch.Tensor
    ffn_fill_BlC: torch.Tensor


def gather_tokens(x_BlC: torch.Tensor, idx_Bk: torch.Tensor) -> torch.Tensor:
    return torch.gather(x_BlC, 1, idx_Bk.unsqueeze(-1).expand(-1, -1, x_BlC.shape[-1]))


def scatter_tokens(fill_BlC: torch.Tensor, idx_Bk: torch.Tensor, src_BkC: torch.Tensor) -> torch.Tensor:
    return fill_BlC.scatter(1, idx_Bk.unsqueeze(-1).expand(-1, -1, src_BkC.shape[-1]), src_BkC)


class FFN(nn.Module):
    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class SelfAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 attn_l2_norm: bool = False):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be a multiple of num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.attn_l2_norm = attn_l2_norm
        if attn_l2_norm:
            # cosine attention: q and k unit length, a learned per-head temperature (capped at 100)
            self.scale = 1.0
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, num_heads, 1, 1), 4.0).log())
            self.max_scale_mul = math.log(100)
        else:
            self.scale = 0.25 / math.sqrt(self.head_dim)
        self.mat_qkv = nn.Linear(embed_dim, embed_dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(embed_dim))
        self.v_bias = nn.Parameter(torch.zeros(embed_dim))
        self.register_buffer("zero_k_bias", torch.zeros(embed_dim))
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()
        self.attn_drop = attn_drop

    def qkv_BHlc(self, x_BlC: torch.Tensor):
        B, l, C = x_BlC.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        qkv = F.linear(x_BlC, self.mat_qkv.weight, bias).view(B, l, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(dim=0)
        if self.attn_l2_norm:
            scale_mul = self.scale_mul_1H11.clamp_max(self.max_scale_mul).exp()
            q = F.normalize(q, dim=-1).mul(scale_mul)
            k = F.normalize(k, dim=-1)
        return q, k, v

    def attend(self, q, k, v, attn_bias: Optional[torch.Tensor]) -> torch.Tensor:
        B, _, l, _ = q.shape
        p = self.attn_drop if self.training else 0.0
        oup = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=p, scale=self.scale)
        return self.proj_drop(self.proj(oup.transpose(1, 2).reshape(B, l, -1)))

    def forward(self, x_BLC: torch.Tensor, attn_bias: Optional[torch.Tensor]) -> torch.Tensor:
        q, k, v = self.qkv_BHlc(x_BLC)
        return self.attend(q, k, v, attn_bias)

    def step(self, x_BlC: torch.Tensor, k_prefix: Optional[torch.Tensor], v_prefix: Optional[torch.Tensor]):
        """Attend this scale's tokens to the K/V prefix plus themselves; return output, new K, new V."""
        q, k, v = self.qkv_BHlc(x_BlC)
        k_all = k if k_prefix is None else torch.cat((k_prefix, k), dim=2)
        v_all = v if v_prefix is None else torch.cat((v_prefix, v), dim=2)
        return self.attend(q, k_all, v_all, None), k, v


class AdaLNSelfAttn(nn.Module):
    def __init__(self, embed_dim: int, cond_dim: int, shared_aln: bool, num_heads: int, mlp_ratio: float = 4.0,
                 norm_eps: float = 1e-6, drop: float = 0.0, attn_drop: float = 0.0, attn_l2_norm: bool = False):
        super().__init__()
        self.C, self.D = embed_dim, cond_dim
        self.attn = SelfAttention(embed_dim, num_heads, attn_drop=attn_drop, proj_drop=drop, attn_l2_norm=attn_l2_norm)
        self.ffn = FFN(embed_dim, round(embed_dim * mlp_ratio), drop=drop)
        self.ln_wo_grad = nn.LayerNorm(embed_dim, eps=norm_eps, elementwise_affine=False)
        self.shared_aln = shared_aln
        if shared_aln:
            self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, embed_dim) / embed_dim ** 0.5)
        else:
            self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * embed_dim))

    def ada(self, cond_BD_or_gss: torch.Tensor) -> Ada6:
        """gamma1, gamma2, scale1, scale2, shift1, shift2, each B1C."""
        if self.shared_aln:  # cond is already the shared projection, B16C
            return (self.ada_gss + cond_BD_or_gss).unbind(2)
        return self.ada_lin(cond_BD_or_gss).view(-1, 1, 6, self.C).unbind(2)

    def forward(self, x: torch.Tensor, cond_BD: torch.Tensor, attn_bias: Optional[torch.Tensor]) -> torch.Tensor:
        gamma1, gamma2, scale1, scale2, shift1, shift2 = self.ada(cond_BD)
        x = x + self.attn(self.ln_wo_grad(x).mul(scale1.add(1)).add_(shift1), attn_bias=attn_bias).mul_(gamma1)
        x = x + self.ffn(self.ln_wo_grad(x).mul(scale2.add(1)).add_(shift2)).mul(gamma2)
        return x

    def step(self, x_BlC: torch.Tensor, ada: Ada6, k_prefix: Optional[torch.Tensor],
             v_prefix: Optional[torch.Tensor], keep: Optional[LayerKeep] = None):
        """One scale through this block. Returns x, new K, new V (kept tokens only), and the
        gated attention and FFN branch outputs over all tokens (the next scale's residual cache)."""
        gamma1, gamma2, scale1, scale2, shift1, shift2 = ada
        h = self.ln_wo_grad(x_BlC).mul(scale1.add(1)).add_(shift1)
        if keep is not None:
            h = gather_tokens(h, keep.idx_Bk)
        attn_out, k, v = self.attn.step(h, k_prefix, v_prefix)
        attn_branch = attn_out.mul_(gamma1)
        if keep is not None:
            attn_branch = scatter_tokens(keep.attn_fill_BlC, keep.idx_Bk, attn_branch)
        x_BlC = x_BlC + attn_branch
        h = self.ln_wo_grad(x_BlC).mul(scale2.add(1)).add_(shift2)
        if keep is not None:
            h = gather_tokens(h, keep.idx_Bk)
        ffn_branch = self.ffn(h).mul(gamma2)
        if keep is not None:
            ffn_branch = scatter_tokens(keep.ffn_fill_BlC, keep.idx_Bk, ffn_branch)
        return x_BlC + ffn_branch, k, v, attn_branch, ffn_branch


class AdaLNBeforeHead(nn.Module):
    def __init__(self, C: int, D: int, norm_eps: float = 1e-6):
        super().__init__()
        self.C, self.D = C, D
        self.ln_wo_grad = nn.LayerNorm(C, eps=norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * C))

    def forward(self, x_BLC: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada_lin(cond_BD).view(-1, 1, 2, self.C).unbind(2)
        return self.ln_wo_grad(x_BLC).mul(scale.add(1)).add_(shift)
