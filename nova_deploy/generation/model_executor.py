"""The generation loop's executor on the PyTorch model: VAR's explicit scale steps over a KV cache
allocated once for the whole pyramid, the VQVAE's f_hat update and decoder."""
from typing import List, Optional

import torch

from nova_deploy.generation.executor import cfg_rows
from nova_deploy.models.var import VAR, ScaleOutput
from nova_deploy.models.var_blocks import LayerKeep
from nova_deploy.nova.deciders import ScalePlan
from nova_deploy.resample import resample_tokens


class KVCache:
    """Per-layer K/V of every scale so far, in buffers allocated once for the whole pyramid.

    Layers may keep different token counts once pruning starts, so each layer has its own length.
    """

    def __init__(self, depth: int, batch: int, num_heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device):
        shape = (batch, num_heads, max_len, head_dim)
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(depth)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(depth)]
        self.lengths = [0] * depth

    @classmethod
    def for_model(cls, var, batch2: int, dtype: torch.dtype, device) -> "KVCache":
        return cls(var.depth, batch2, var.num_heads, var.L, var.C // var.num_heads, dtype, device)

    def prefix(self, layer: int):
        n = self.lengths[layer]
        if n == 0:
            return None, None
        return self.k[layer][:, :, :n], self.v[layer][:, :, :n]

    def append(self, layer: int, k_BHkc: torch.Tensor, v_BHkc: torch.Tensor) -> None:
        n, k = self.lengths[layer], k_BHkc.shape[2]
        self.k[layer][:, :, n:n + k].copy_(k_BHkc)
        self.v[layer][:, :, n:n + k].copy_(v_BHkc)
        self.lengths[layer] = n + k


class ModelExecutor:
    """fill_mode: how the previous scale's branch outputs are resampled into pruned tokens."""

    def __init__(self, var: VAR, fill_mode: str = "bicubic"):
        self.var, self.vae, self.quant = var, var.vae, var.vae.quantize
        self.fill_mode = fill_mode
        self.patch_nums, self.depth, self.embed_dim, self.z_channels = var.patch_nums, var.depth, var.C, var.Cvae
        self.device = var.lvl_1L.device
        self.codebook_VC = self.quant.embedding.weight
        self.prev_branches = None  # the previous scale's (attn, ffn) branch outputs: the residual cache

    def begin(self, label_B: torch.Tensor) -> torch.Tensor:
        self.cond = self.var.condition(label_B)
        x_BlC = self.var.first_token_map(self.cond)
        self.kv = KVCache.for_model(self.var, 2 * label_B.shape[0], x_BlC.dtype, self.device)
        P = self.patch_nums[-1]
        self.f_hat = self.cond.cond_BD.new_zeros(label_B.shape[0], self.z_channels, P, P)
        self.prev_branches = None
        return x_BlC

    def run_scale(self, si: int, x_BlC: torch.Tensor, plan: Optional[ScalePlan]) -> ScaleOutput:
        keeps = None if plan is None else self.layer_keeps(si, plan)
        prefixes = [self.kv.prefix(i) for i in range(self.depth)]
        out = self.var.scale_step(x_BlC, self.cond, [p[0] for p in prefixes], [p[1] for p in prefixes], keeps)
        self.prev_branches = (out.attn_branch, out.ffn_branch)
        return out

    def layer_keeps(self, si: int, plan: ScalePlan) -> List[Optional[LayerKeep]]:
        """Execution inputs of a plan: CFG rows reuse their sample's kept positions; pruned tokens
        receive the previous scale's branch output of the same layer, upsampled to this grid."""
        pn_prev, pn = self.patch_nums[si - 1], self.patch_nums[si]
        attn_prev, ffn_prev = self.prev_branches
        keeps: List[Optional[LayerKeep]] = []
        for i, idx_Bk in enumerate(plan.idx_N):
            if idx_Bk is None:
                keeps.append(None)
                continue
            keeps.append(LayerKeep(idx_Bk=cfg_rows(idx_Bk),
                                   attn_fill_BlC=resample_tokens(attn_prev[i], pn_prev, pn, self.fill_mode),
                                   ffn_fill_BlC=resample_tokens(ffn_prev[i], pn_prev, pn, self.fill_mode)))
        return keeps

    def append_kv(self, out: ScaleOutput) -> None:
        for i in range(self.depth):
            self.kv.append(i, out.k_new[i], out.v_new[i])

    def next_input(self, si: int, h_BChw: torch.Tensor) -> Optional[torch.Tensor]:
        K = len(self.patch_nums)
        self.f_hat, next_map = self.quant.get_next_autoregressive_input(si, K, self.f_hat, h_BChw)
        return self.var.next_token_map(si + 1, next_map) if si < K - 1 else None

    def decode(self) -> torch.Tensor:
        return self.vae.fhat_to_img(self.f_hat)
