"""The Python API checks a request at the top of generate(), before any work: top-k within the
vocabulary, seeds and class ids in range, the batch within the sampler's cap and the memory here."""
import pytest
import torch

from nova_deploy import memory_estimate
from nova_deploy.errors import InvalidArgument
from nova_deploy.export.exporter import configs_of
from nova_deploy.export.spec import build_spec
from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import get_preset
from nova_deploy.runtime.backends import open_backend
from nova_deploy.runtime.pipeline import Pipeline
from nova_deploy.sampler import generate
from nova_deploy.sampling import SamplingParams


@pytest.fixture(scope="module")
def tiny():
    var, vae = build_pair(get_preset("tiny"), seed=0)
    return var, vae


@pytest.fixture
def untouched(tiny, monkeypatch):
    """The model, made to fail the test if generation starts."""
    var, _ = tiny

    def started(*args, **kwargs):
        raise AssertionError("generation started before the request was checked")

    monkeypatch.setattr(var, "condition", started)
    return var


@pytest.mark.parametrize("kwargs, message", [
    (dict(params=SamplingParams(top_k=65)), "top_k must be <= 64, got 65"),
    (dict(g_seed=2 ** 64), "seed must be <= 9223372036854775807"),
    (dict(label_B=[10 ** 20]), r"class id \[100000000000000000000\] out of range: valid are 0..9"),
])
def test_sampler_refuses_before_any_work(untouched, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        generate(untouched, B=1, **kwargs)


def test_sampler_batch_cap_and_memory(untouched, monkeypatch):
    with pytest.raises(InvalidArgument, match="batch of 20000 images: the PyTorch sampler takes 1..1024"):
        generate(untouched, B=20000)
    monkeypatch.setattr(memory_estimate, "available_bytes", lambda: 1000)
    with pytest.raises(InvalidArgument, match="generating 4 images in one call needs at least"):
        generate(untouched, B=4)


def test_sampler_still_generates_in_range(tiny):
    var, _ = tiny
    result = generate(var, B=2, label_B=[0, 9], g_seed=2 ** 63 - 1, params=SamplingParams(top_k=64))
    assert result.images.shape[0] == 2 and torch.isfinite(result.images).all()


class NoBackend:
    def infer(self, *args, **kwargs):
        raise AssertionError("a graph ran before the request was checked")


def test_pipeline_refuses_before_any_graph_runs(tiny):
    var_cfg, vae_cfg = configs_of(*tiny)
    pipe = Pipeline.__new__(Pipeline)  # no export on disk needed: generate() checks before touching one
    pipe.spec, pipe.backend = build_spec(var_cfg, vae_cfg, max_batch=2), NoBackend()
    with pytest.raises(InvalidArgument, match="top_k must be <= 64, got 65"):
        pipe.generate([0], top_k=65)
    with pytest.raises(InvalidArgument, match="seed must be <= 9223372036854775807"):
        pipe.generate([0], seed=10 ** 23)
    with pytest.raises(InvalidArgument, match=r"class id \[100000000000000000000\] out of range"):
        pipe.generate([10 ** 20])


def test_backend_threads_and_device_are_checked_before_opening():
    with pytest.raises(InvalidArgument, match="threads must be <= "):
        open_backend("onnxruntime", export=None, threads=100000)
    with pytest.raises(InvalidArgument, match="device 'gpu0' is not a device; valid: cpu, cuda, cuda:N"):
        open_backend("onnxruntime", export=None, device="gpu0")


def test_memory_estimate_counts_the_kv_cache_and_grows_with_the_batch():
    args = dict(depth=2, width=64, patch_nums=(1, 2, 4), vocab_size=128, decoder_ch=32, ch_mult=(1, 2))
    one, eight = (memory_estimate.generation_bytes(b, **args) for b in (1, 8))
    kv_cache = 2 * 2 * (2 * 8) * (1 + 4 + 16) * 64 * 4  # layers x (K, V) x CFG rows x tokens x width x fp32
    assert eight > kv_cache and eight == 8 * one
