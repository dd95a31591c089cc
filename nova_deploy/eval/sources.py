"""What `evaluate` scores: images from a generator of the reference model, given labels and a seed.

The PyTorch sampler is one source; an export run by the runtime on a backend, at the export's
precision, is another (nova_deploy.runtime.eval_source), so that a precision or backend that changes
tokens is scored the same way as a pruning policy.
"""
from dataclasses import dataclass
from typing import List, Optional, Protocol

import torch

from nova_deploy.nova.policy import Policy
from nova_deploy.sampler import generate
from nova_deploy.sampling import SamplingParams


@dataclass
class Generated:
    images: torch.Tensor  # B 3 H W in [0, 1], on the CPU
    tokens: List[torch.Tensor]  # sampled ids per scale, B x pn*pn, on the CPU
    trace: Optional[List[dict]]


class ImageSource(Protocol):
    name: str  # what generated the images, as reports print it
    max_batch: Optional[int]  # most images per call (None: any)

    def generate(self, labels: torch.Tensor, seed: int, params: SamplingParams, policy: Policy) -> Generated:
        """Images of labels from one random stream seeded with seed, with the policy's trace."""


class SamplerSource:
    """The PyTorch sampler on the model in fp32: the reference every other source is compared with."""

    max_batch = None

    def __init__(self, var):
        self.var = var
        self.name = "PyTorch sampler, fp32"

    def generate(self, labels: torch.Tensor, seed: int, params: SamplingParams, policy: Policy) -> Generated:
        r = generate(self.var, labels.shape[0], labels, g_seed=seed, params=params, policy=policy, want_trace=True)
        return Generated(images=r.images, tokens=r.idx_Bl, trace=r.trace)
