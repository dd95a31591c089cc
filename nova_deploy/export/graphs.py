"""The modules traced into graphs, one per GraphSpec kind.

Each reads its inputs by the spec's names and returns its outputs by name (`compute`); `forward`
is the positional face the tracer sees, in spec order. They call the model's own per-scale API
(`VAR.condition`, `scale_step`, `next_token_map`, the quantizer's Phi, `VQVAE.fhat_to_img`);
the only thing written differently is resampling, which is a fixed interpolation matrix
(nova_deploy.resample) instead of F.interpolate, so that ONNX reproduces torch's bicubic and
area modes (also at non-integer ratios) instead of approximating them with Resize.
"""
from typing import Dict, List, Mapping, Optional

import torch
import torch.nn as nn

from nova_deploy.export import vocabulary as io
from nova_deploy.export.spec import ExportSpec, GraphSpec
from nova_deploy.models.var import VAR, Conditioning, ScaleOutput
from nova_deploy.models.var_blocks import LayerKeep
from nova_deploy.models.vqvae import VQVAE
from nova_deploy.resample import token_resample_matrix


def _resample_matrix_2d(n_in: int, n_out: int, mode: str) -> torch.Tensor:
    """(n_in*n_in, n_out*n_out) float32 matrix R with x_BCl @ R == F.interpolate on the B C n n view."""
    return token_resample_matrix(n_in, n_out, mode).T.contiguous().float()


class GraphModule(nn.Module):
    """A module traced into one graph. `compute` takes the feeds and returns the outputs by the
    spec's names; `forward` is its positional face for torch.onnx.export, in spec order."""

    def __init__(self, g: GraphSpec):
        super().__init__()
        self.input_names = [t.name for t in g.inputs]
        self.output_names = [t.name for t in g.outputs]

    def compute(self, feeds: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, *inputs):
        out = self.compute(dict(zip(self.input_names, inputs)))
        return tuple(out[n] for n in self.output_names)


class CondGraph(GraphModule):
    def __init__(self, var: VAR, g: GraphSpec):
        super().__init__(g)
        self.var = var

    def compute(self, feeds):
        cond = self.var.condition(feeds[io.LABELS])
        return {io.ADA: cond.ada_NB6C, io.HEAD_ADA: cond.head_ada_B2C, io.X_FIRST: self.var.first_token_map(cond)}


class ScaleGraph(GraphModule):
    """One scale through every block and the head; pruning state in and out as named tensors."""

    def __init__(self, var: VAR, g: GraphSpec, spec: ExportSpec):
        super().__init__(g)
        self.var, self.si, self.depth = var, g.si, var.depth
        self.has_prefix = g.si > 0
        self.prunable = spec.prune.prunable(g.si)
        self.emit_branches = g.emits_branches
        if self.prunable:
            pn_prev, pn = spec.patch_nums[g.si - 1], spec.patch_nums[g.si]
            dtype = var.pos_1LC.dtype
            self.register_buffer("fill_resample_lm",  # l x l_prev: cache tokens -> this scale's grid
                                 token_resample_matrix(pn_prev, pn, spec.prune.fill_mode).to(dtype), persistent=False)

    def compute(self, feeds):
        N = self.depth
        k_prefix: List[Optional[torch.Tensor]] = [None] * N
        v_prefix: List[Optional[torch.Tensor]] = [None] * N
        if self.has_prefix:
            k_prefix = [feeds[io.k_prefix(i)] for i in range(N)]
            v_prefix = [feeds[io.v_prefix(i)] for i in range(N)]
        keeps = None
        if self.prunable:
            keeps = [LayerKeep(idx_Bk=feeds[io.keep_idx(i)],
                               attn_fill_BlC=torch.matmul(self.fill_resample_lm, feeds[io.attn_cache(i)]),
                               ffn_fill_BlC=torch.matmul(self.fill_resample_lm, feeds[io.ffn_cache(i)]))
                     for i in range(N)]
        cond = Conditioning(cond_BD=None, ada_NB6C=feeds[io.ADA], head_ada_B2C=feeds[io.HEAD_ADA])
        out = self.var.scale_step(feeds[io.X], cond, k_prefix, v_prefix, keeps)
        return scale_outputs(out, self.emit_branches)


def scale_outputs(out: ScaleOutput, emit_branches: bool) -> Dict[str, torch.Tensor]:
    """A scale step's results under the scale graph's output names."""
    named = {io.LOGITS: out.logits_BlV}
    for i in range(len(out.k_new)):
        named[io.k_new(i)], named[io.v_new(i)] = out.k_new[i], out.v_new[i]
    if emit_branches:
        for i in range(len(out.attn_branch)):
            named[io.attn_branch(i)], named[io.ffn_branch(i)] = out.attn_branch[i], out.ffn_branch[i]
    return named


class NextInputGraph(GraphModule):
    """f_hat += Phi_si(bicubic(h -> P x P)); x_next = next_token_map(si+1, area(f_hat -> pn_next)).

    Equals quantizer.get_next_autoregressive_input followed by VAR.next_token_map."""

    def __init__(self, var: VAR, vae: VQVAE, g: GraphSpec):
        super().__init__(g)
        quant = vae.quantize
        self.var, self.si = var, g.si
        self.phi = quant.phi(g.si)
        self.pn, self.P, self.pn_next = quant.v_patch_nums[g.si], quant.v_patch_nums[-1], quant.v_patch_nums[g.si + 1]
        self.register_buffer("up_lL", _resample_matrix_2d(self.pn, self.P, "bicubic"), persistent=False)
        self.register_buffer("down_Ll", _resample_matrix_2d(self.P, self.pn_next, "area"), persistent=False)

    def compute(self, feeds):
        f_hat_BChw, h_BChw = feeds[io.F_HAT], feeds[io.H]
        B, Cv = h_BChw.shape[0], h_BChw.shape[1]
        up = torch.matmul(h_BChw.reshape(B, Cv, self.pn * self.pn), self.up_lL).reshape(B, Cv, self.P, self.P)
        f_hat = f_hat_BChw + self.phi(up)
        down = torch.matmul(f_hat.reshape(B, Cv, self.P * self.P), self.down_Ll)
        down = down.reshape(B, Cv, self.pn_next, self.pn_next).to(self.var.pos_1LC.dtype)
        return {io.F_HAT_NEXT: f_hat, io.X_NEXT: self.var.next_token_map(self.si + 1, down)}


class FinalFhatGraph(GraphModule):
    """The last scale's update: f_hat + Phi(h), no resampling (h is already P x P)."""

    def __init__(self, vae: VQVAE, g: GraphSpec):
        super().__init__(g)
        K = len(vae.quantize.v_patch_nums)
        self.phi = vae.quantize.phi(K - 1)

    def compute(self, feeds):
        return {io.F_HAT_NEXT: feeds[io.F_HAT] + self.phi(feeds[io.H])}


class DecoderGraph(GraphModule):
    def __init__(self, vae: VQVAE, g: GraphSpec):
        super().__init__(g)
        self.vae = vae
        self.memory_format = torch.contiguous_format  # what the exporter traces: an NCHW graph
        self.autocast_dtype: Optional[torch.dtype] = None  # fp32 unless use_bf16() (never traced)

    def to_channels_last(self) -> "DecoderGraph":
        """Run the decoder's convolutions on channels_last (NHWC) activations and weights: oneDNN's
        direct layout for conv on CPU, where NCHW activations are reordered around every conv
        (tools/decoder_speed.py measures it). Only post_quant_conv and the decoder change layout;
        the quantizer's Phi convs, which the next_input graphs share, keep theirs, so f_hat and
        the tokens are computed as before. Results are the same up to summation order."""
        self.vae.post_quant_conv.to(memory_format=torch.channels_last)
        self.vae.decoder.to(memory_format=torch.channels_last)
        self.memory_format = torch.channels_last
        return self

    def use_bf16(self) -> "DecoderGraph":
        """Decode under bf16 autocast (convolutions and attention matmuls in bf16, the image fp32).
        An opt-in that changes the image (tools/decoder_speed.py reports by how much): fast only
        where the CPU has native bf16 (AVX512_BF16, AMX), which oneDNN otherwise emulates."""
        self.autocast_dtype = torch.bfloat16
        return self

    def compute(self, feeds):
        f_hat = feeds[io.F_HAT].contiguous(memory_format=self.memory_format)
        if self.autocast_dtype is None:
            return {io.IMAGE: self.vae.fhat_to_img(f_hat)}
        with torch.autocast(f_hat.device.type, dtype=self.autocast_dtype):
            image = self.vae.fhat_to_img(f_hat)
        return {io.IMAGE: image.float()}


def graph_module(g: GraphSpec, spec: ExportSpec, var: VAR, vae: VQVAE) -> nn.Module:
    """The module to trace for g; var is at the export precision, vae fp32."""
    if g.kind == "cond":
        return CondGraph(var, g).eval()
    if g.kind == "scale":
        return ScaleGraph(var, g, spec).eval()
    if g.kind == "next_input":
        return NextInputGraph(var, vae, g).eval()
    if g.kind == "final_fhat":
        return FinalFhatGraph(vae, g).eval()
    if g.kind == "decoder":
        return DecoderGraph(vae, g).eval()
    raise ValueError(f"unknown graph kind {g.kind!r}")


__all__ = ["GraphModule", "CondGraph", "ScaleGraph", "NextInputGraph", "FinalFhatGraph", "DecoderGraph", "graph_module"]
