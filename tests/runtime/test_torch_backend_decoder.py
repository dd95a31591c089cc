"""The torch backend's decoder module: channels_last on CPU, within the decoder graph's fp32 image
tolerance of the eager decoder, without touching the layout of what the other graphs run; bf16 opt-in."""
import inspect

import torch

from nova_deploy.export import vocabulary as io
from nova_deploy.export.spec import build_spec
from nova_deploy.export.validate import TOLERANCES
from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import get_preset
from nova_deploy.runtime.backends.torch_backend import TorchBackend, deployed_module

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


def test_bf16_decoder_is_opt_in_and_keeps_an_fp32_image_close_to_the_fp32_decoder():
    var, vae = build_pair(PRESET)
    spec = build_spec(PRESET.var, PRESET.vae, max_batch=2)
    f_hat = torch.randn(2, vae.Cvae, PRESET.vae.v_patch_nums[-1], PRESET.vae.v_patch_nums[-1],
                        generator=torch.Generator().manual_seed(0))
    g = spec.graph("decoder")
    with torch.no_grad():
        fp32 = deployed_module(g, spec, var, vae, torch.device("cpu")).compute({io.F_HAT: f_hat})[io.IMAGE]
        bf16 = deployed_module(g, spec, var, vae, torch.device("cpu"),
                               decoder_bf16=True).compute({io.F_HAT: f_hat})[io.IMAGE]

    assert inspect.signature(TorchBackend).parameters["decoder_bf16"].default is False  # opt-in
    assert bf16.dtype == torch.float32
    assert not torch.equal(bf16, fp32)  # bf16 did run
    psnr_db = 10 * torch.log10(4 / ((bf16 - fp32) ** 2).mean())  # images in [-1, 1]
    assert psnr_db >= 30, f"bf16 decoder {psnr_db:.1f} dB against fp32"
