"""What the generation loop asks of whatever computes the scales.

An executor owns the state that lives between scales (conditioning, K/V prefixes, the previous
scale's branch outputs that fill pruned tokens, f_hat) and runs the model's pieces on it:

    x_BlC = ex.begin(label_B)             # conditioning and scale 0's input tokens (2B CFG rows)
    out = ex.run_scale(si, x_BlC, plan)   # ScaleOutput: raw logits of the 2B rows, new K/V, branches
    ex.append_kv(out)                     # the scale's K/V join the prefix of the next scales
    x_BlC = ex.next_input(si, h_BChw)     # f_hat update; the next scale's tokens (None after the last)
    img = ex.decode()                     # f_hat -> image in [-1, 1]

`plan` (nova.policy.ScalePlan or None for dense) names the kept positions of the B samples; an
executor applies them to both CFG halves (`cfg_rows`) and fills pruned tokens from the previous
scale's branches of the same layer.
"""
from typing import Optional, Protocol, Sequence

import torch

from nova_deploy.models.var import ScaleOutput
from nova_deploy.nova.deciders import ScalePlan


class ScaleExecutor(Protocol):
    patch_nums: Sequence[int]
    depth: int
    embed_dim: int  # C
    z_channels: int  # Cvae
    device: torch.device
    codebook_VC: torch.Tensor  # float32 V x Cvae: token ids -> h

    def begin(self, label_B: torch.Tensor) -> torch.Tensor: ...

    def run_scale(self, si: int, x_BlC: torch.Tensor, plan: Optional[ScalePlan]) -> ScaleOutput: ...

    def append_kv(self, out: ScaleOutput) -> None: ...

    def next_input(self, si: int, h_BChw: torch.Tensor) -> Optional[torch.Tensor]: ...

    def decode(self) -> torch.Tensor: ...


def cfg_rows(idx_Bk: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Kept positions of the B samples for the 2B CFG rows: the null-class row of a sample keeps
    the sample's positions (the two halves are combined token by token)."""
    if out is None:
        return idx_Bk.repeat(2, 1)
    out.view(2, *idx_Bk.shape).copy_(idx_Bk)  # one broadcast copy into both halves
    return out
