"""The transformer at the export precision: a low-precision copy of VAR with fp32 islands.

fp16/bf16 graphs store the VAR weights and compute the matmuls, K/V and residual stream in that
precision. What is sensitive to rounding stays fp32 inside the graph: LayerNorm statistics, the
q/k normalisation of cosine attention, the attention softmax, the head (so the logits, from which
the runtime computes CFG, softmax and NOVA's entropy, are fp32). The VQVAE graphs (f_hat update,
decoder) are fp32 at every precision.
"""
import copy
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

from nova_deploy.errors import InvalidArgument
from nova_deploy.export.vocabulary import PRECISION_ELEMENT_TYPE
from nova_deploy.models.var import VAR
from nova_deploy.models.var_blocks import SelfAttention



class Fp32LayerNorm(nn.LayerNorm):
    """LayerNorm whose statistics are computed in fp32; returns the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class Fp32SoftmaxAttention(SelfAttention):
    """SelfAttention of a low-precision copy: matmuls in the weights' dtype; q/k normalisation
    (cosine attention) and the softmax in fp32. Only used in low-precision copies (`to_precision`)."""

    def qkv_BHlc(self, x_BlC: torch.Tensor):
        B, l, C = x_BlC.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        qkv = F.linear(x_BlC, self.mat_qkv.weight, bias).view(B, l, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(dim=0)
        if self.attn_l2_norm:
            scale_mul = self.scale_mul_1H11.float().clamp_max(self.max_scale_mul).exp()
            q = F.normalize(q.float(), dim=-1).mul(scale_mul).to(x_BlC.dtype)
            k = F.normalize(k.float(), dim=-1).to(x_BlC.dtype)
        return q, k, v

    def attend(self, q, k, v, attn_bias):
        if attn_bias is not None:
            raise NotImplementedError("low-precision copies run the per-scale steps only (no attention bias)")
        B, _, l, _ = q.shape
        scores = torch.matmul(q * self.scale, k.transpose(-2, -1)).float()
        oup = torch.matmul(scores.softmax(dim=-1).to(v.dtype), v)
        return self.proj_drop(self.proj(oup.transpose(1, 2).reshape(B, l, -1)))


def to_precision(var: VAR, precision: str) -> VAR:
    """var itself for fp32; else a copy at that precision (the VQVAE is shared, not copied)."""
    if precision == "fp32":
        return var
    dtype = PRECISION_ELEMENT_TYPE[precision].torch
    lp = copy.deepcopy(var, memo={id(var.vae_proxy): var.vae_proxy, id(var.vae_quant_proxy): var.vae_quant_proxy})
    lp.to(dtype)
    lp.head.float()  # logits in fp32; VAR.logits casts the normalised tokens to fp32 before the head
    for module in list(lp.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.LayerNorm:
                ln = Fp32LayerNorm(child.normalized_shape, eps=child.eps, elementwise_affine=child.elementwise_affine)
                ln.load_state_dict(child.state_dict())
                setattr(module, name, ln.to(dtype))
            elif type(child) is SelfAttention:
                child.__class__ = Fp32SoftmaxAttention  # same parameters and buffers, precision-aware steps
    return lp.eval().requires_grad_(False)


def check_representable(var: VAR, precision: str) -> None:
    """InvalidArgument listing weights that the precision cannot hold (beyond its finite range)."""
    if precision == "fp32":
        return
    dtype = PRECISION_ELEMENT_TYPE[precision].torch
    limit = torch.finfo(dtype).max
    bad: List[str] = []
    for name, t in var.state_dict().items():
        if not t.is_floating_point() or name.startswith("head."):  # the head stays fp32
            continue
        finite = t.detach()[torch.isfinite(t)].abs()  # an infinite mask value stays infinite: representable
        peak = float(finite.max()) if finite.numel() else 0.0
        if peak > limit:
            bad.append(f"{name} (max |w| {peak:.4g})")
    if bad:
        raise InvalidArgument(f"precision {precision} cannot hold {len(bad)} weight tensor(s) beyond its range "
                              f"+-{limit:.4g}: {', '.join(bad[:4])}{', ...' if len(bad) > 4 else ''}; "
                              f"export with --precision fp32" + (" or bf16" if precision == "fp16" else ""))
