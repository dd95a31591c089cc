"""Teacher forcing in the sampler: forced scales take the given tokens, the generator is drawn
from exactly as without forcing, and a fully forced pyramid decodes to the VQVAE's reconstruction."""
import pytest
import torch

from model_factories import randomised_pair
from nova_deploy.errors import InvalidArgument
from nova_deploy.sampler import generate
from nova_deploy.sampling import SamplingParams


@pytest.fixture(scope="module")
def tiny():
    return randomised_pair("tiny")


def test_forcing_the_models_own_tokens_changes_nothing(tiny):
    var, _ = tiny
    params = SamplingParams(cfg=2.0)
    free = generate(var, 3, [0, 1, 2], g_seed=7, params=params)
    forced = generate(var, 3, [0, 1, 2], g_seed=7, params=params, forced_idx=free.idx_Bl[:3])
    for a, b in zip(free.idx_Bl, forced.idx_Bl):
        assert torch.equal(a, b)  # the later scales drew the same noise
    assert torch.equal(free.images, forced.images)


@pytest.mark.parametrize("more_smooth", [False, True])  # a forced scale takes the hard token, not the soft mix
def test_fully_forced_pyramid_decodes_to_the_reconstruction(tiny, more_smooth):
    var, vae = tiny
    img = torch.rand(2, 3, vae.image_size, vae.image_size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    idx = vae.img_to_idxBl(img)
    out = generate(var, 2, [0, 1], g_seed=0, forced_idx=idx, params=SamplingParams(more_smooth=more_smooth))
    recon = vae.idxBl_to_img(idx, same_shape=True, last_one=True).add(1).mul(0.5)
    torch.testing.assert_close(out.images, recon, rtol=0, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(out.idx_Bl, idx))


def test_forced_tokens_of_the_wrong_shape_are_refused(tiny):
    var, _ = tiny
    with pytest.raises(InvalidArgument, match=r"forced_idx\[1\] has shape \(2, 3\); scale 1 needs \(2, 4\)"):
        generate(var, 2, [0, 1], forced_idx=[torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long)])
    too_many = [torch.zeros(2, p * p, dtype=torch.long) for p in var.patch_nums] + [torch.zeros(2, 1, dtype=torch.long)]
    with pytest.raises(InvalidArgument, match="forced_idx has"):
        generate(var, 2, [0, 1], forced_idx=too_many)
    with pytest.raises(InvalidArgument, match=rf"forced_idx\[0\] holds token ids outside 0..{var.V - 1}"):
        generate(var, 2, [0, 1], forced_idx=[torch.full((2, 1), var.V, dtype=torch.long)])
