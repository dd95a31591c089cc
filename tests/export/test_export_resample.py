"""The quantizer's resampling exports exactly: bicubic upsampling and area downsampling at
non-integer ratios are fixed matrices in the graph, and ONNX Runtime matches F.interpolate."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from nova_deploy.export.graphs import NextInputGraph
from nova_deploy.export.onnx_io import GraphWriter, dummy_inputs, export_graph, trace_sizes
from nova_deploy.export.spec import build_spec
from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import Preset, VARConfig, VQVAEConfig
from export_sources import one_thread  # noqa: F401  (autouse fixture)

# 8 -> 5 and 8 -> 3 are non-integer area ratios; 2 -> 8, 3 -> 8, 5 -> 8 bicubic upsampling
ODD = Preset("odd", VARConfig(depth=1, embed_dim=32, num_heads=1, num_classes=4, patch_nums=(1, 2, 3, 5, 8)),
             VQVAEConfig(vocab_size=16, z_channels=4, ch=16, v_patch_nums=(1, 2, 3, 5, 8), ch_mult=(1, 1), norm_groups=8))


@pytest.fixture(scope="module")
def odd_models():
    var, vae = build_pair(ODD, seed=0)
    with torch.no_grad():  # make the Phi convolutions and token embedding matter
        for p in list(vae.quantize.parameters()) + list(var.word_embed.parameters()):
            p.copy_(torch.randn_like(p))
    return var, vae


def reference(var, vae, si, f_hat, h):
    K = len(var.patch_nums)
    f_next, down = vae.quantize.get_next_autoregressive_input(si, K, f_hat.clone(), h)
    return f_next, var.next_token_map(si + 1, down)


@pytest.mark.parametrize("si", [1, 2, 3])
def test_wrapper_equals_f_interpolate(odd_models, si):
    var, vae = odd_models
    pn, P = var.patch_nums[si], var.patch_nums[-1]
    f_hat, h = torch.randn(3, 4, P, P), torch.randn(3, 4, pn, pn)
    g = build_spec(ODD.var, ODD.vae, max_batch=4).graph(f"next_input_{si:02d}")
    got = NextInputGraph(var, vae, g)(f_hat, h)
    for a, b in zip(got, reference(var, vae, si, f_hat, h)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("si", [1, 2])
def test_onnx_runtime_equals_f_interpolate(odd_models, tmp_path, si):
    var, vae = odd_models
    spec = build_spec(ODD.var, ODD.vae, max_batch=4)
    g = spec.graph(f"next_input_{si:02d}")
    model = export_graph(NextInputGraph(var, vae, g).eval(), g, dummy_inputs(g, trace_sizes(g), 4), spec.opset)
    writer = GraphWriter(tmp_path)
    writer.write(model, g.file)
    writer.close()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(tmp_path / g.file), so, providers=["CPUExecutionProvider"])
    pn, P = var.patch_nums[si], var.patch_nums[-1]
    for B in (1, 4):  # traced at 2
        f_hat, h = torch.randn(B, 4, P, P), torch.randn(B, 4, pn, pn)
        f_next, x_next = sess.run(None, {"f_hat_BChw": f_hat.numpy(), "h_BChw": h.numpy()})
        ref_f, ref_x = reference(var, vae, si, f_hat, h)
        np.testing.assert_allclose(f_next, ref_f.numpy(), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(x_next, ref_x.numpy(), atol=1e-5, rtol=1e-5)
        assert x_next.shape == (2 * B, var.patch_nums[si + 1] ** 2, 32)
