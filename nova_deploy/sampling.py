"""Token sampling of VAR: classifier-free guidance, top-k/top-p, gumbel smoothing.

These functions consume the generator in exactly the official order, so that the same seed gives
the same tokens as FoundationVision/VAR (draw="official"). The official draw is torch.multinomial,
which on a CPU draws one exponential variate per vocabulary entry of every token (VAR's reference
model: 2.3 ms of a 38 ms image, more than all other work between graph calls together);
draw="inverse-cdf" samples the same distribution from one uniform variate per token, so its tokens
differ from the official ones for the same seed. Given ImageStreams instead (one generator per image), they
draw each image's rows from its own generator, so an image's samples do not depend on which other
images share its batch (what a server batching independent requests needs).
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import torch

from nova_deploy.bounds import INT64_MAX, INT64_MIN
from nova_deploy.errors import require


OFFICIAL_DRAW, INVERSE_CDF_DRAW = "official", "inverse-cdf"
DRAWS = (OFFICIAL_DRAW, INVERSE_CDF_DRAW)


@dataclass(frozen=True)
class SamplingParams:
    cfg: float = 1.5  # guidance at the last scale; it ramps linearly from 0 at the first scale
    top_k: int = 0  # 0: no top-k filter
    top_p: float = 0.0  # 0: no nucleus filter
    more_smooth: bool = False  # gumbel-softmax embedding mix instead of a hard token (visual only)
    draw: str = OFFICIAL_DRAW  # DRAWS: how a token is drawn from its distribution

    def __post_init__(self):
        require(self.draw in DRAWS, f"draw must be one of {', '.join(DRAWS)}, got {self.draw!r}")
        require(math.isfinite(self.cfg) and self.cfg >= 0, f"cfg must be a finite number >= 0, got {self.cfg}")
        require(int(self.top_k) == self.top_k and self.top_k >= 0, f"top_k must be an integer >= 0, got {self.top_k}")
        require(0.0 <= self.top_p <= 1.0, f"top_p must be in [0, 1], got {self.top_p}")


class ImageStreams:
    """One torch.Generator per image, seeded with that image's own seed."""

    def __init__(self, seeds: Sequence[int], device):
        for s in seeds:
            require(int(s) == s and INT64_MIN <= int(s) <= INT64_MAX, f"seed {s!r} is not a 64-bit integer")
        self.generators: List[torch.Generator] = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __len__(self) -> int:
        return len(self.generators)


Streams = Union[None, torch.Generator, ImageStreams]


def random_streams(seed: Optional[int], seeds: Optional[Sequence[int]], batch: int, device) -> Streams:
    """What sampling draws from: seed= one generator for the batch in the official order (the
    images of a batch depend on each other), seeds= one generator per image, neither: torch's global one."""
    require(seed is None or seeds is None, "give seed= (one stream for the batch, the official order) or "
                                           "seeds= (one seed per image), not both")
    if seeds is None:
        return None if seed is None else torch.Generator(device=device).manual_seed(int(seed))
    require(len(seeds) == batch, f"seeds= gives {len(seeds)} seeds for {batch} images: give one per image")
    return ImageStreams(seeds, device)


def guidance_at(si: int, num_scales: int, cfg: float) -> float:
    """The official CFG ramp t = cfg * si / (K - 1)."""
    return cfg * (si / (num_scales - 1))


def combine_cfg_(logits_2BlV: torch.Tensor, t: float) -> torch.Tensor:
    """(1 + t) * conditional - t * null-class logits, the official formula's very operations, written
    in place: the result is the first B rows of logits_2BlV and the last B rows are overwritten (the
    loop needs neither afterwards, and three fresh V-wide tensors per scale cost more than the math)."""
    B = logits_2BlV.shape[0] // 2
    cond, uncond = logits_2BlV[:B], logits_2BlV[B:]
    return cond.mul_(1 + t).sub_(uncond.mul_(t))


def sample_with_top_k_top_p_(logits_BlV: torch.Tensor, top_k: int = 0, top_p: float = 0.0,
                             rng: Streams = None, num_samples: int = 1, draw: str = OFFICIAL_DRAW) -> torch.Tensor:
    """Sample token ids B l num_samples. Filters logits_BlV in place (the gumbel path reads it after).
    draw: "official" (torch.multinomial, the official stream) or "inverse-cdf" (one sample per token)."""
    B, l, V = logits_BlV.shape
    if top_k > 0:
        kth_largest = logits_BlV.topk(top_k, largest=True, sorted=False, dim=-1)[0].amin(dim=-1, keepdim=True)
        logits_BlV.masked_fill_(logits_BlV < kth_largest, -torch.inf)
    if top_p > 0:
        sorted_logits, sorted_idx = logits_BlV.sort(dim=-1, descending=False)
        sorted_remove = sorted_logits.softmax(dim=-1).cumsum_(dim=-1) <= (1 - top_p)
        sorted_remove[..., -1:] = False
        logits_BlV.masked_fill_(sorted_remove.scatter(sorted_idx.ndim - 1, sorted_idx, sorted_remove), -torch.inf)
    replacement = num_samples >= 0
    probs_BlV = logits_BlV.softmax(dim=-1)
    if draw == INVERSE_CDF_DRAW:
        require(num_samples == 1, f"draw {INVERSE_CDF_DRAW} takes one sample per token, not {num_samples}")
        return inverse_cdf_draw(probs_BlV, rng).unsqueeze(-1)
    if isinstance(rng, ImageStreams):
        return torch.stack([torch.multinomial(probs_BlV[b], num_samples=abs(num_samples), replacement=replacement,
                                              generator=g) for b, g in enumerate(rng.generators)])
    return torch.multinomial(probs_BlV.view(-1, V), num_samples=abs(num_samples), replacement=replacement,
                             generator=rng).view(B, l, -1)


def inverse_cdf_draw(probs_BlV: torch.Tensor, rng: Streams) -> torch.Tensor:
    """Token ids B l, each drawn from its row of probs by inverting the cumulative distribution at
    one uniform variate (drawn from rng in row order; with ImageStreams, image b's rows from its own
    generator). An entry of probability 0 (filtered by top-k/top-p) is never drawn: the float64
    variate is at most 1 - 2**-53, so u * total rounds to below the total, and the first cumulative
    sum above u belongs to an entry that adds to the sum."""
    B, l, V = probs_BlV.shape
    cdf = probs_BlV.cumsum(dim=-1, dtype=torch.float64)
    if isinstance(rng, ImageStreams):
        u = torch.stack([torch.rand(l, 1, generator=g, dtype=torch.float64, device=probs_BlV.device)
                         for g in rng.generators])
    else:
        u = torch.rand(B, l, 1, generator=rng, dtype=torch.float64, device=probs_BlV.device)
    return torch.searchsorted(cdf, u.mul_(cdf[..., -1:]), right=True).squeeze_(-1)


def gumbel_softmax_with_rng(logits: torch.Tensor, tau: float, rng: Streams, dim: int = -1) -> torch.Tensor:
    """Soft gumbel-softmax drawing its noise from rng (the official `more_smooth` path); with
    ImageStreams, logits' first dim is the image and each image's noise comes from its generator."""
    if rng is None:
        return torch.nn.functional.gumbel_softmax(logits=logits, tau=tau, hard=False, dim=dim)
    gumbels = torch.empty_like(logits, memory_format=torch.legacy_contiguous_format)
    if isinstance(rng, ImageStreams):
        for b, g in enumerate(rng.generators):
            gumbels[b].exponential_(generator=g)
    else:
        gumbels.exponential_(generator=rng)
    return ((logits - gumbels.log()) / tau).softmax(dim)


def smooth_temperature(si: int, num_scales: int) -> float:
    ratio = si / (num_scales - 1)
    return max(0.27 * (1 - ratio * 0.95), 0.005)
