import math

import numpy as np
import pytest
import scipy.stats
import torch

from nova_deploy.errors import InvalidArgument
from nova_deploy.nova.entropy import scale_entropy, token_entropy

torch.set_num_threads(1)


def test_uniform_logits_have_entropy_one():
    H = token_entropy(torch.full((2, 3, 50), 7.0))
    assert H.shape == (2, 3) and torch.allclose(H, torch.ones(2, 3), atol=1e-6)


def test_a_single_finite_logit_has_entropy_zero():
    logits = torch.full((2, 3, 50), -math.inf)
    logits[..., 4] = 0.0
    H = token_entropy(logits)
    assert not H.isnan().any() and torch.equal(H, torch.zeros(2, 3))


def test_matches_scipy_on_random_logits():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 40, generator=g, dtype=torch.float64) * 4
    logits[0, 0, :10] = -math.inf  # masked entries (top-k) are allowed
    probs = torch.softmax(logits, dim=-1).numpy()
    expected = scipy.stats.entropy(probs, axis=-1) / math.log(40)
    np.testing.assert_allclose(token_entropy(logits).numpy(), expected, atol=1e-6)


def test_large_logits_stay_finite_and_fp16_gives_float32():
    logits = torch.randn(2, 4, 30).mul(1e4).half()
    H = token_entropy(logits)
    assert H.dtype == torch.float32 and torch.isfinite(H).all() and (H >= 0).all() and (H <= 1).all()


def test_scale_entropy_is_the_token_mean():
    H = torch.tensor([[0.0, 1.0, 0.5], [0.2, 0.2, 0.2]])
    assert torch.allclose(scale_entropy(H), torch.tensor([0.5, 0.2]))


def test_a_one_entry_vocabulary_is_rejected():
    with pytest.raises(InvalidArgument, match="V=1"):
        token_entropy(torch.zeros(1, 2, 1))
