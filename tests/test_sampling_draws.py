"""The two ways of drawing a token (sampling.DRAWS): the official one (torch.multinomial, the
official code's stream) and inverse-cdf (one variate per token) sample the same distribution."""
import pytest
import torch
from scipy.stats import chisquare

from nova_deploy.errors import InvalidArgument
from nova_deploy.sampling import ImageStreams, SamplingParams, sample_with_top_k_top_p_

V, ROWS = 12, 20000


def _counts(logits_V, draw, top_k=0, top_p=0.0, seed=0):
    logits = logits_V.expand(1, ROWS, V).clone()
    ids = sample_with_top_k_top_p_(logits, top_k, top_p, rng=torch.Generator().manual_seed(seed), draw=draw)
    return torch.bincount(ids.flatten(), minlength=V)


@pytest.mark.parametrize("top_k,top_p", [(0, 0.0), (5, 0.0), (0, 0.8)])
def test_both_draws_sample_the_filtered_distribution(top_k, top_p):
    logits_V = torch.linspace(-2.0, 1.5, V)[torch.randperm(V, generator=torch.Generator().manual_seed(1))]
    filtered = logits_V.clone().unsqueeze(0).unsqueeze(0)
    sample_with_top_k_top_p_(filtered, top_k, top_p, rng=torch.Generator().manual_seed(0))  # filters in place
    probs = filtered.flatten().softmax(-1).double()
    allowed = probs > 0
    for draw in ("official", "inverse-cdf"):
        counts = _counts(logits_V, draw, top_k, top_p)
        assert int(counts[~allowed].sum()) == 0, f"{draw} drew a token its filter removed"
        expected = probs[allowed] / probs[allowed].sum() * ROWS
        stat = chisquare(counts[allowed].double().numpy(), expected.numpy())
        assert stat.pvalue > 1e-4, f"{draw}: counts {counts.tolist()} are not the distribution {probs.tolist()}"


def test_the_draws_give_different_tokens_for_one_seed():
    logits = torch.randn(2, 30, V, generator=torch.Generator().manual_seed(3))
    a = sample_with_top_k_top_p_(logits.clone(), rng=torch.Generator().manual_seed(9), draw="official")
    b = sample_with_top_k_top_p_(logits.clone(), rng=torch.Generator().manual_seed(9), draw="inverse-cdf")
    again = sample_with_top_k_top_p_(logits.clone(), rng=torch.Generator().manual_seed(9), draw="inverse-cdf")
    assert a.shape == b.shape == (2, 30, 1) and not torch.equal(a, b) and torch.equal(b, again)


def test_a_one_hot_distribution_is_drawn_exactly():
    logits = torch.full((3, 7, V), -torch.inf)
    logits[..., 4] = 0.0
    ids = sample_with_top_k_top_p_(logits, rng=torch.Generator().manual_seed(0), draw="inverse-cdf")
    assert bool((ids == 4).all())


def test_inverse_cdf_per_image_streams_do_not_depend_on_the_batch():
    logits = torch.randn(3, 9, V, generator=torch.Generator().manual_seed(4))
    batched = sample_with_top_k_top_p_(logits.clone(), rng=ImageStreams([1, 2, 3], "cpu"), draw="inverse-cdf")
    alone = sample_with_top_k_top_p_(logits[1:2].clone(), rng=ImageStreams([2], "cpu"), draw="inverse-cdf")
    assert torch.equal(batched[1], alone[0])


def test_an_unknown_draw_is_refused_naming_the_valid_ones():
    with pytest.raises(InvalidArgument, match="draw must be one of official, inverse-cdf"):
        SamplingParams(draw="gumbel")
