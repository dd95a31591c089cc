"""Which tokens a layer computes: the most important ones, the same ordering for every layer.

Kept indices follow the LayerKeep contract of the model: int64, sorted ascending, the same count
k in every row of the batch.
"""
from typing import List, Sequence

import torch

from nova_deploy.errors import require
from nova_deploy.models.var_blocks import gather_tokens, scatter_tokens
from nova_deploy.resample import ResampleMode, resample_tokens

__all__ = ["importance_from_entropy", "fastvar_importance", "select_kept", "nested_kept",
           "gather_tokens", "scatter_tokens"]  # the last two: the model's, re-exported with the selection


def importance_from_entropy(H_prev_Bl: torch.Tensor, pn_prev: int, pn_cur: int, mode: ResampleMode) -> torch.Tensor:
    """NOVA importance: the previous scale's token entropy map upsampled to the current grid.
    Tokens where the model was still uncertain are where this scale still adds content."""
    return resample_tokens(H_prev_Bl.float().unsqueeze(-1), pn_prev, pn_cur, mode).squeeze(-1)


def fastvar_importance(x_BlC: torch.Tensor) -> torch.Tensor:
    """FastVAR importance: squared L2 distance of each token from its sample's mean token
    (tokens that differ from the average carry the detail; the rest is flat background)."""
    x = x_BlC.float()
    return (x - x.mean(dim=1, keepdim=True)).square().sum(dim=-1)


def _importance_order(imp_Bl: torch.Tensor) -> torch.Tensor:
    # stable descending sort: among equal importances the lower position comes first
    return torch.sort(imp_Bl, dim=1, descending=True, stable=True).indices


def select_kept(imp_Bl: torch.Tensor, k: int) -> torch.Tensor:
    """Positions of the k most important tokens per sample, sorted ascending (int64, B x k);
    ties go to the lower position."""
    require(imp_Bl.dim() == 2, f"imp_Bl must be B x l, got shape {tuple(imp_Bl.shape)}")
    l = imp_Bl.shape[1]
    require(1 <= k <= l, f"k must be in [1, {l}] for a scale of {l} tokens, got {k}")
    return _importance_order(imp_Bl)[:, :k].sort(dim=1).values


def nested_kept(imp_Bl: torch.Tensor, kept_N: Sequence[int]) -> List[torch.Tensor]:
    """`select_kept` for every layer from one ordering: a layer keeping fewer tokens keeps a
    subset of the tokens of any layer keeping more (nested sets, one sort per scale)."""
    require(imp_Bl.dim() == 2, f"imp_Bl must be B x l, got shape {tuple(imp_Bl.shape)}")
    l = imp_Bl.shape[1]
    for layer, k in enumerate(kept_N):
        require(1 <= k <= l, f"kept_N[{layer}] must be in [1, {l}] for a scale of {l} tokens, got {k}")
    order_Bl = _importance_order(imp_Bl)
    return [order_Bl[:, :k].sort(dim=1).values for k in kept_N]
