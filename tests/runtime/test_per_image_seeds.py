"""Pipeline.generate(seeds=...): one random stream per image, so an image does not depend on its batch."""
import pytest
import torch

from export_sources import one_thread  # noqa: F401  (autouse: one CPU thread)
from nova_deploy.errors import InvalidArgument
from nova_deploy.runtime.pipeline import Pipeline

pytestmark = pytest.mark.slow  # needs the session's small export


@pytest.fixture(scope="module")
def pipe(small_export):
    assert small_export.manifest["precision"] == "fp32"
    with Pipeline.from_dir(small_export.out_dir, backend="onnxruntime", threads=1) as p:
        yield p


def _tokens(result, b):
    return [t[b] for t in result.tokens]


@pytest.mark.parametrize("top_k", [0, 16])
def test_an_images_tokens_with_seeds_do_not_depend_on_the_rest_of_the_batch(pipe, top_k):
    """policy none, fp32: image (class 3, seed 101) alone, first of a pair, second of a pair."""
    alone = pipe.generate([3], seeds=[101], top_k=top_k)
    first = pipe.generate([3, 5], seeds=[101, 202], top_k=top_k)
    second = pipe.generate([7, 3], seeds=[303, 101], top_k=top_k)
    for batched, b in ((first, 0), (second, 1)):
        assert all(torch.equal(a, t) for a, t in zip(_tokens(alone, 0), _tokens(batched, b)))
        assert torch.allclose(alone.images[0], batched.images[b], atol=1e-5)
    other = pipe.generate([3], seeds=[102], top_k=top_k)  # the seed matters
    assert not all(torch.equal(a, t) for a, t in zip(_tokens(alone, 0), _tokens(other, 0)))


def test_seed_keeps_one_stream_for_the_batch(pipe):
    """seed= (official parity): the second image of a pair is not that image generated alone."""
    pair = pipe.generate([3, 3], seed=9)
    alone = pipe.generate([3], seed=9)
    assert not all(torch.equal(a, t) for a, t in zip(_tokens(alone, 0), _tokens(pair, 1)))


def test_seed_and_seeds_together_or_miscounted_are_refused(pipe):
    with pytest.raises(InvalidArgument, match="not both"):
        pipe.generate([1], seed=0, seeds=[0])
    with pytest.raises(InvalidArgument, match="1 seeds for 2 images"):
        pipe.generate([1, 2], seeds=[0])
