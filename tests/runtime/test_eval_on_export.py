"""`eval` scores an export on a runtime backend: the images are the runtime's, fidelity is measured
against the PyTorch sampler's dense fp32 images (so a precision's cost shows beside a policy's)."""
import pytest

from cli_runner import run_cli
from nova_deploy.eval.evaluate import EvalCache, evaluate, min_samples_for_fid
from nova_deploy.nova.policy import parse_policy
from nova_deploy.runtime.backends.torch_backend import load_source_models
from nova_deploy.runtime.eval_source import PipelineSource
from nova_deploy.runtime.pipeline import Pipeline


@pytest.mark.slow
def test_fp32_export_scores_as_the_sampler_does(small_export):
    n = min_samples_for_fid()
    with Pipeline.from_dir(small_export.out_dir, backend="onnxruntime") as pipe:
        var, vae = load_source_models(pipe.export, "cpu")
        cache = EvalCache()
        on_export = evaluate(var, vae, parse_policy("none"), n_samples=n, batch=64, cache=cache,
                             source=PipelineSource(pipe))
    on_sampler = evaluate(var, vae, parse_policy("none"), n_samples=n, batch=pipe.max_batch, cache=cache)
    assert str(small_export.out_dir) in on_export.source and "fp32" in on_export.source and "onnxruntime" in on_export.source
    assert on_sampler.source == "PyTorch sampler, fp32"
    # an fp32 export keeps the sampler's tokens: every token agrees, the images match to float error
    assert on_export.token_agreement_per_scale == [1.0] * len(var.patch_nums)
    assert on_export.psnr_vs_dense > 60
    assert on_sampler.token_agreement_per_scale is None  # the sampler dense is not compared with itself
    assert on_export.confusion == on_sampler.confusion
    assert on_export.fid_feat == pytest.approx(on_sampler.fid_feat, rel=1e-4)


def test_eval_engines_refuses_model_options_and_runtime_options_without_it(small_export, tmp_path):
    r = run_cli("eval", "--engines", small_export.out_dir, "--preset", "small", "--json", tmp_path / "e.json")
    assert r.exit_code == 2 and "--checkpoint/--vae/--preset do not apply" in r.output
    r = run_cli("eval", "--preset", "small", "--threads", "1", "--json", tmp_path / "e.json")
    assert r.exit_code == 2 and "--threads applies to an export's runtime (--engines DIR)" in r.output
    assert not (tmp_path / "e.json").exists()
