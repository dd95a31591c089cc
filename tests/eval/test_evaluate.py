"""`nova-deploy eval` end to end on a small random model (quality numbers are not the point here:
the plumbing, the checks and the artefacts are)."""
from dataclasses import replace

import pytest

from cli_runner import run_cli
from model_factories import randomised_pair
from nova_deploy.errors import InvalidArgument
from nova_deploy.eval import evaluate as evaluate_module
from nova_deploy.eval.evaluate import evaluate, min_samples_for_fid
from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import get_preset
from nova_deploy.nova.policy import parse_policy
from nova_deploy.sampler import generate


@pytest.fixture(scope="module")
def small():
    return randomised_pair("small")


@pytest.mark.slow
def test_evaluate_reports_every_metric(small, monkeypatch):
    var, vae = small
    dense_runs = []

    def counting_generate(*args, **kwargs):
        if "policy" not in kwargs:
            dense_runs.append(1)
        return generate(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "generate", counting_generate)
    cache = {}
    rep = evaluate(var, vae, parse_policy("fixed:0,0,0,0,0,0.5,0.5"), n_samples=min_samples_for_fid(), batch=129,
                   dense_cache=cache)
    assert len(dense_runs) == 2 and rep.dense_seconds_per_image > 0
    again = evaluate(var, vae, parse_policy("fixed:0,0,0,0,0,0.25,0.25"), n_samples=min_samples_for_fid(),
                     batch=129, dense_cache=cache)
    assert len(dense_runs) == 2  # the second policy is measured against the cached dense images
    assert again.dense_seconds_per_image == rep.dense_seconds_per_image
    assert again.psnr_vs_dense > rep.psnr_vs_dense  # pruning less stays closer to dense
    assert 0 <= rep.classifier_accuracy <= 1
    assert rep.fid_feat > rep.fid_feat_real_vs_real  # random weights are far from real shapes
    assert len(rep.entropy_per_scale) == len(var.patch_nums) and len(rep.token_agreement_per_scale) == 7
    assert rep.token_agreement_per_scale[:5] == [1.0] * 5 and rep.token_agreement_per_scale[-1] < 1.0
    assert rep.flop_reduction > 1


def test_too_few_samples(small):
    var, vae = small
    with pytest.raises(InvalidArgument, match="too few for a stable Fréchet distance"):
        evaluate(var, vae, parse_policy("none"), n_samples=100)


def test_model_that_does_not_match_the_classifier():
    tiny = get_preset("tiny")
    five_classes = replace(tiny, var=replace(tiny.var, num_classes=5))
    with pytest.raises(InvalidArgument, match="does not match the classifier"):
        evaluate(*build_pair(five_classes, seed=0), parse_policy("none"), n_samples=300)


def test_cli_eval_bad_inputs(tmp_path):
    r = run_cli("eval", "--preset", "small", "--samples", "10", "--json", tmp_path / "e.json")
    assert r.exit_code == 2 and "too few" in r.output
    r = run_cli("eval", "--preset", "small", "--json", tmp_path / "no" / "e.json")
    assert r.exit_code == 2 and "does not exist" in r.output
    assert not (tmp_path / "e.json").exists()
