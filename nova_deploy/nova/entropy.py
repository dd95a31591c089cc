"""Token entropy: how undecided the model still is about each token of a scale.

NOVA reads it twice: the mean over a scale traces how much detail the model is still adding
(the activation curve), and the per-token map of the previous scale says where it is adding it.
"""
import math

import torch

from nova_deploy.errors import require


def token_entropy(logits_BlV: torch.Tensor) -> torch.Tensor:
    """Shannon entropy of softmax(logits) over the last axis, divided by log(V): float32 in [0, 1].

    H = -sum_v p_v log p_v / log V with log p from log_softmax (stable for large logits). Logits
    of -inf are allowed while each row keeps a finite one; their 0 * log 0 terms count as 0.
    Computed in float32 whatever the input dtype, since fp16 sums over V lose the small terms.
    """
    V = logits_BlV.shape[-1]
    require(V >= 2, f"entropy needs a vocabulary of at least 2 entries, got V={V}")
    logp = torch.log_softmax(logits_BlV.float(), dim=-1)
    p_logp = torch.where(logp > -torch.inf, logp.exp().mul_(logp), 0.0)
    return (-p_logp.sum(dim=-1) / math.log(V)).clamp_(0.0, 1.0)  # clamp: rounding may leave [0, 1] by an ulp


def scale_entropy(H_Bl: torch.Tensor) -> torch.Tensor:
    """Mean token entropy of one scale per sample: e_B."""
    return H_Bl.float().mean(dim=-1)
