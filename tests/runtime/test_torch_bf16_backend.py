"""The torch-bf16 backend (an opt-in variant of the torch backend): the transformer of an fp32 export
run as a bf16 export of the model would run it, the export's fp32 buffers cast at each call."""
import pytest
import torch

from export_sources import one_thread  # noqa: F401  (autouse: one CPU thread)
from nova_deploy.errors import InvalidArgument
from nova_deploy.export.manifest import open_export
from nova_deploy.runtime.backends import open_backend
from nova_deploy.runtime.backends.torch_backend import TorchBackend
from nova_deploy.runtime.pipeline import Pipeline

pytestmark = pytest.mark.slow  # needs the session's small export


def test_the_transformer_runs_in_bf16_over_fp32_buffers(small_export):
    backend = open_backend("torch-bf16", open_export(small_export.out_dir), device="cpu")
    try:
        assert open_export(small_export.out_dir).spec.precision == "fp32" and backend.run_spec.precision == "bf16"
        scale = backend.modules[backend.spec.scale_graph(2).name]
        weights = {p.dtype for name, p in scale.named_parameters() if "blocks" in name}
        assert weights == {torch.bfloat16}
        casts = backend._casts[backend.spec.scale_graph(2).name]
        assert casts and set(casts.values()) == {torch.bfloat16}  # K/V prefixes, caches, tokens, AdaLN
        assert "decoder" not in backend._casts  # the VQVAE graphs take fp32 at every precision
    finally:
        backend.deactivate()


def test_bf16_tokens_follow_fp32_early_and_differ_late(small_export):
    labels = [3, 7]
    with Pipeline.from_dir(small_export.out_dir, backend="torch") as fp32, \
            Pipeline.from_dir(small_export.out_dir, backend="torch-bf16") as bf16:
        a, b = fp32.generate(labels, seed=4), bf16.generate(labels, seed=4)
    assert torch.equal(a.tokens[0], b.tokens[0])  # the first token map is decided by a clear margin
    assert not all(torch.equal(x, y) for x, y in zip(a.tokens, b.tokens))  # bf16 did run
    assert b.images.dtype == torch.float32 and b.images.shape == a.images.shape


def test_an_unknown_transformer_precision_is_refused(small_export):
    with pytest.raises(InvalidArgument, match="transformer precision must be one of fp32, fp16, bf16, got 'int4'"):
        TorchBackend(open_export(small_export.out_dir), torch.device("cpu"), transformer_precision="int4")


def test_reports_name_what_the_variant_changes(small_export):
    assert TorchBackend(open_export(small_export.out_dir), torch.device("cpu")).label == "torch"
    bf16 = TorchBackend(open_export(small_export.out_dir), torch.device("cpu"), decoder_bf16=True, transformer_precision="bf16")
    assert bf16.label == "torch (transformer bf16, bf16 decoder)"
