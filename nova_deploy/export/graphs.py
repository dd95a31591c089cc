"""The modules traced into graphs, one per GraphSpec kind.

Each takes its inputs positionally in spec order and returns its outputs as a tuple in spec
order, so that the spec alone names them. They call the model's own per-scale API
(`VAR.condition`, `scale_step`, `next_token_map`, the quantizer's Phi, `VQVAE.fhat_to_img`);
the only thing written differently is resampling, which is a fixed interpolation matrix
(nova_deploy.resample) instead of F.interpolate, so that ONNX reproduces torch's bicubic and
area modes (also at non-integer ratios) instead of approximating them with Resize.
"""
from typing import List, Optional

import torch
import torch.nn as nn

from nova_deploy.export.spec import UPSAMPLE_MODE, ExportSpec, GraphSpec
from nova_deploy.models.var import VAR, Conditioning
from nova_deploy.models.var_blocks import LayerKeep
from nova_deploy.models.vqvae import VQVAE
from nova_deploy.resample import token_resample_matrix


def _resample_matrix_2d(n_in: int, n_out: int, mode: str) -> torch.Tensor:
    """(n_in*n_in, n_out*n_out) float32 matrix R with x_BCl @ R == F.interpolate on the B C n n view."""
    return token_resample_matrix(n_in, n_out, mode).T.contiguous().float()


class CondGraph(nn.Module):
    def __init__(self, var: VAR):
        super().__init__()
        self.var = var

    def forward(self, label_B):
        cond = self.var.condition(label_B)
        return cond.ada_NB6C, cond.head_ada_B2C, self.var.first_token_map(cond)


class ScaleGraph(nn.Module):
    """One scale through every block and the head; pruning state in and out as named tensors."""

    def __init__(self, var: VAR, g: GraphSpec, spec: ExportSpec):
        super().__init__()
        self.var, self.si, self.depth = var, g.si, var.depth
        self.has_prefix = g.si > 0
        self.prunable = spec.prune.prunable(g.si)
        self.emit_branches = g.emits_branches
        if self.prunable:
            pn_prev, pn = spec.patch_nums[g.si - 1], spec.patch_nums[g.si]
            dtype = var.pos_1LC.dtype
            self.register_buffer("fill_resample_lm",  # l x l_prev: cache tokens -> this scale's grid
                                 token_resample_matrix(pn_prev, pn, UPSAMPLE_MODE).to(dtype), persistent=False)

    def forward(self, x_BlC, ada_NB6C, head_ada_B2C, *state):
        N = self.depth
        k_prefix: List[Optional[torch.Tensor]] = [None] * N
        v_prefix: List[Optional[torch.Tensor]] = [None] * N
        if self.has_prefix:
            k_prefix, v_prefix = list(state[0:2 * N:2]), list(state[1:2 * N:2])
            state = state[2 * N:]
        keeps = None
        if self.prunable:
            keeps = [LayerKeep(idx_Bk=state[3 * i],
                               attn_fill_BlC=torch.matmul(self.fill_resample_lm, state[3 * i + 1]),
                               ffn_fill_BlC=torch.matmul(self.fill_resample_lm, state[3 * i + 2]))
                     for i in range(N)]
        cond = Conditioning(cond_BD=None, ada_NB6C=ada_NB6C, head_ada_B2C=head_ada_B2C)
        out = self.var.scale_step(x_BlC, cond, k_prefix, v_prefix, keeps)
        result = [out.logits_BlV]
        for i in range(N):
            result += [out.k_new[i], out.v_new[i]]
        if self.emit_branches:
            for i in range(N):
                result += [out.attn_branch[i], out.ffn_branch[i]]
        return tuple(result)


class NextInputGraph(nn.Module):
    """f_hat += Phi_si(bicubic(h -> P x P)); x_next = next_token_map(si+1, area(f_hat -> pn_next)).

    Equals quantizer.get_next_autoregressive_input followed by VAR.next_token_map."""

    def __init__(self, var: VAR, vae: VQVAE, si: int):
        super().__init__()
        quant = vae.quantize
        self.var, self.si = var, si
        self.phi = quant.phi(si)
        self.pn, self.P, self.pn_next = quant.v_patch_nums[si], quant.v_patch_nums[-1], quant.v_patch_nums[si + 1]
        self.register_buffer("up_lL", _resample_matrix_2d(self.pn, self.P, "bicubic"), persistent=False)
        self.register_buffer("down_Ll", _resample_matrix_2d(self.P, self.pn_next, "area"), persistent=False)

    def forward(self, f_hat_BChw, h_BChw):
        B, Cv = h_BChw.shape[0], h_BChw.shape[1]
        up = torch.matmul(h_BChw.reshape(B, Cv, self.pn * self.pn), self.up_lL).reshape(B, Cv, self.P, self.P)
        f_hat = f_hat_BChw + self.phi(up)
        down = torch.matmul(f_hat.reshape(B, Cv, self.P * self.P), self.down_Ll)
        down = down.reshape(B, Cv, self.pn_next, self.pn_next).to(self.var.pos_1LC.dtype)
        return f_hat, self.var.next_token_map(self.si + 1, down)


class FinalFhatGraph(nn.Module):
    """The last scale's update: f_hat + Phi(h), no resampling (h is already P x P)."""

    def __init__(self, vae: VQVAE):
        super().__init__()
        K = len(vae.quantize.v_patch_nums)
        self.phi = vae.quantize.phi(K - 1)

    def forward(self, f_hat_BChw, h_BChw):
        return (f_hat_BChw + self.phi(h_BChw),)


class DecoderGraph(nn.Module):
    def __init__(self, vae: VQVAE):
        super().__init__()
        self.vae = vae

    def forward(self, f_hat_BChw):
        return (self.vae.fhat_to_img(f_hat_BChw),)


def graph_module(g: GraphSpec, spec: ExportSpec, var: VAR, vae: VQVAE) -> nn.Module:
    """The module to trace for g; var is at the export precision, vae fp32."""
    if g.kind == "cond":
        return CondGraph(var).eval()
    if g.kind == "scale":
        return ScaleGraph(var, g, spec).eval()
    if g.kind == "next_input":
        return NextInputGraph(var, vae, g.si).eval()
    if g.kind == "final_fhat":
        return FinalFhatGraph(vae).eval()
    if g.kind == "decoder":
        return DecoderGraph(vae).eval()
    raise ValueError(f"unknown graph kind {g.kind!r}")


__all__ = ["CondGraph", "ScaleGraph", "NextInputGraph", "FinalFhatGraph", "DecoderGraph", "graph_module"]
