"""Models for tests, importable from any test directory (pyproject puts tests/ on the path)."""
import torch


def randomised_pair(preset_name: str = "small", shared_aln: bool = False, std: float = 0.2, seed: int = 3):
    """A model pair whose every VAR parameter is random (the official init makes AdaLN gammas ~1e-5 and
    the head ~0, which would hide mistakes in the blocks and make every sample the same)."""
    from nova_deploy.models.build import build_pair
    from nova_deploy.models.presets import get_preset, with_overrides

    var, vae = build_pair(with_overrides(get_preset(preset_name), shared_aln=shared_aln), seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in var.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return var, vae
