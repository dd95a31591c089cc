"""Per-image random streams (sampling.ImageStreams): an image's draws depend on its own seed only."""
import pytest
import torch

from nova_deploy.errors import InvalidArgument
from nova_deploy.sampling import (ImageStreams, combine_cfg_, gumbel_softmax_with_rng, random_streams,
                                  sample_with_top_k_top_p_)


def _logits(B, seed=0):
    return torch.randn(B, 5, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("top_k,top_p", [(0, 0.0), (8, 0.0), (0, 0.9)])
def test_an_images_tokens_do_not_depend_on_its_batch(top_k, top_p):
    logits = _logits(3)
    batched = sample_with_top_k_top_p_(logits.clone(), top_k, top_p, rng=ImageStreams([11, 22, 33], "cpu"))
    for b, seed in enumerate([11, 22, 33]):
        alone = sample_with_top_k_top_p_(logits[b:b + 1].clone(), top_k, top_p, rng=ImageStreams([seed], "cpu"))
        assert torch.equal(batched[b], alone[0])
    reordered = sample_with_top_k_top_p_(logits[[2, 0]].clone(), top_k, top_p, rng=ImageStreams([33, 11], "cpu"))
    assert torch.equal(reordered[0], batched[2]) and torch.equal(reordered[1], batched[0])


def test_one_stream_for_the_batch_is_not_per_image():
    """seed= keeps the official meaning: images share one stream, so the second image alone differs."""
    logits = _logits(2)
    shared = sample_with_top_k_top_p_(logits.clone(), rng=random_streams(7, None, 2, "cpu"))
    second_alone = sample_with_top_k_top_p_(logits[1:].clone(), rng=random_streams(7, None, 1, "cpu"))
    per_image = sample_with_top_k_top_p_(logits.clone(), rng=random_streams(None, [7, 7], 2, "cpu"))
    assert not torch.equal(shared[1], second_alone[0])
    first_alone = sample_with_top_k_top_p_(logits[:1].clone(), rng=random_streams(None, [7], 1, "cpu"))
    assert torch.equal(per_image[0], first_alone[0])


def test_gumbel_noise_per_image():
    logits = _logits(2, seed=1)
    batched = gumbel_softmax_with_rng(logits, 0.5, ImageStreams([5, 6], "cpu"))
    alone = gumbel_softmax_with_rng(logits[1:], 0.5, ImageStreams([6], "cpu"))
    assert torch.equal(batched[1], alone[0])
    shared = gumbel_softmax_with_rng(logits, 0.5, torch.Generator().manual_seed(5))
    assert not torch.equal(shared[1], alone[0])


@pytest.mark.parametrize("seed,seeds,batch,message", [
    (1, [1], 1, "not both"),
    (None, [1, 2], 3, "2 seeds for 3 images"),
    (None, [2 ** 63], 1, "not a 64-bit integer"),
    (None, [1.5], 1, "not a 64-bit integer"),
])
def test_bad_seeds_are_refused(seed, seeds, batch, message):
    with pytest.raises(InvalidArgument, match=message):
        random_streams(seed, seeds, batch, "cpu")


def test_int64_extremes_are_accepted():
    assert len(random_streams(None, [-(2 ** 63), 2 ** 63 - 1, 0], 3, "cpu")) == 3


@pytest.mark.parametrize("t", [0.0, 0.25, 1.5 * 5 / 6])
def test_in_place_cfg_is_the_official_formula_bit_for_bit(t):
    logits = torch.randn(6, 64, 40, generator=torch.Generator().manual_seed(3)) * 4
    logits[0, 0, :3] = -torch.inf  # a filtered-looking row: inf arithmetic as the official code has it
    official = (1 + t) * logits[:3] - t * logits[3:]
    got = combine_cfg_(logits.clone(), t)
    assert torch.equal(got.isnan(), official.isnan())
    assert torch.equal(got.nan_to_num(), official.nan_to_num())
