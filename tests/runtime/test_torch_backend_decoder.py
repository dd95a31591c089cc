"""The torch backend's decoder module: channels_last on CPU, within the decoder graph's fp32 image
tolerance of the eager decoder, and without touching the layout of what the other graphs run."""
import torch

from nova_deploy.export import vocabulary as io
from nova_deploy.export.spec import build_spec
from nova_deploy.export.validate import TOLERANCES
from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import get_preset
from nova_deploy.runtime.backends.torch_backend import deployed_module

PRESET = get_preset("small")


def test_cpu_decoder_runs_channels_last_within_the_image_tolerance():
    var, vae = build_pair(PRESET)
    spec = build_spec(PRESET.var, PRESET.vae, max_batch=2)
    f_hat = torch.randn(2, vae.Cvae, PRESET.vae.v_patch_nums[-1], PRESET.vae.v_patch_nums[-1],
                        generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = vae.fhat_to_img(f_hat.clone())
        decoder = deployed_module(spec.graph("decoder"), spec, var, vae, torch.device("cpu"))
        got = decoder.compute({io.F_HAT: f_hat})[io.IMAGE]

    assert vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert not vae.decoder.conv_in.weight.is_contiguous()
    assert got.is_contiguous(memory_format=torch.channels_last)
    atol, rtol = TOLERANCES["fp32"]["image"]
    assert (got - want).abs().max() <= atol + rtol * want.abs().max()
    # the quantizer's Phi convs feed f_hat and hence the tokens: their layout is left as it was
    phi_convs = [m for m in vae.quantize.quant_resi.modules() if isinstance(m, torch.nn.Conv2d)]
    assert phi_convs and all(conv.weight.is_contiguous() for conv in phi_convs)


def test_other_graphs_keep_the_traced_layout():
    var, vae = build_pair(PRESET)
    spec = build_spec(PRESET.var, PRESET.vae, max_batch=2)
    deployed_module(spec.graph("final_fhat"), spec, var, vae, torch.device("cpu"))
    assert vae.decoder.conv_in.weight.is_contiguous()
