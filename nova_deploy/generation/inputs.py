"""A request's class labels and random generator, resolved the way the official sampler does."""
from typing import List, Optional, Union

import torch

from nova_deploy.errors import require


def resolve_labels(num_classes: int, B: int, label_B: Union[None, int, torch.Tensor, List[int]],
                   rng: Optional[torch.Generator], device) -> torch.Tensor:
    require(int(B) == B and B >= 1, f"batch size must be an integer >= 1, got {B}")
    if label_B is None:  # official: uniform random classes, drawn first from the same generator
        uniform = torch.full((1, num_classes), 1.0 / num_classes, device=device)
        return torch.multinomial(uniform, num_samples=B, replacement=True, generator=rng).reshape(B)
    if isinstance(label_B, int):
        label_B = torch.full((B,), num_classes if label_B < 0 else label_B, device=device)
    label_B = torch.as_tensor(label_B, dtype=torch.long, device=device)
    require(label_B.shape == (B,), f"expected {B} class labels, got shape {tuple(label_B.shape)}")
    bad = label_B[(label_B < 0) | (label_B > num_classes)]
    require(bad.numel() == 0, f"class id {bad[:1].tolist()} out of range: valid are 0..{num_classes - 1} "
                              f"(or {num_classes}, the null class)")
    return label_B


def make_generator(g_seed: Optional[int], device) -> Optional[torch.Generator]:
    if g_seed is None:
        return None
    return torch.Generator(device=device).manual_seed(int(g_seed))
