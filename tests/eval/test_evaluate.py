"""`nova-deploy eval` end to end on a small random model (quality numbers are not the point here:
the plumbing, the checks and the artefacts are)."""
import json
from dataclasses import replace

import pytest
import torch

from cli_runner import run_cli
from model_factories import randomised_pair
from nova_deploy.data import CLASS_NAMES, data_fingerprint
from nova_deploy.errors import InvalidArgument
from nova_deploy.eval import evaluate as evaluate_module
from nova_deploy.eval import sources as sources_module
from nova_deploy.eval.classifier import IMAGE_SIZE
from nova_deploy.eval.evaluate import FEATURE_DIM, EvalCache, EvalReport, evaluate, min_samples_for_fid
from nova_deploy.eval.report import eval_record, format_per_class
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
    dense_runs, real_runs = [], []

    def counting_generate(*args, **kwargs):
        if kwargs["policy"].name == "none":
            dense_runs.append(1)
        return generate(*args, **kwargs)

    def counting_real_features(*args):
        real_runs.append(1)
        return real_features(*args)

    real_features = evaluate_module.real_features
    monkeypatch.setattr(sources_module, "generate", counting_generate)
    monkeypatch.setattr(evaluate_module, "real_features", counting_real_features)
    cache = EvalCache()
    rep = evaluate(var, vae, parse_policy("fixed:0,0,0,0,0,0.5,0.5"), n_samples=min_samples_for_fid(), batch=129,
                   cache=cache)
    assert len(dense_runs) == 2 and rep.dense_seconds_per_image > 0 and len(real_runs) == 2
    again = evaluate(var, vae, parse_policy("fixed:0,0,0,0,0,0.25,0.25"), n_samples=min_samples_for_fid(),
                     batch=129, cache=cache)
    assert len(dense_runs) == 2  # the second policy is measured against the cached dense images
    assert len(real_runs) == 2  # and against the same real features
    assert again.fid_feat_real_vs_real == rep.fid_feat_real_vs_real
    assert again.dense_seconds_per_image == rep.dense_seconds_per_image
    assert again.psnr_vs_dense > rep.psnr_vs_dense  # pruning less stays closer to dense
    assert sum(map(sum, rep.confusion)) == rep.n_samples
    assert [sum(row) for row in rep.confusion] == [rep.n_samples // 10 + (i < rep.n_samples % 10) for i in range(10)]
    diagonal = sum(rep.confusion[i][i] for i in range(10))
    assert rep.classifier_accuracy == diagonal / rep.n_samples
    assert rep.to_dict()["per_class_accuracy"] == [rep.confusion[i][i] / sum(rep.confusion[i]) for i in range(10)]
    assert rep.fid_feat > rep.fid_feat_real_vs_real  # random weights are far from real shapes
    assert len(rep.entropy_per_scale) == len(var.patch_nums) and len(rep.token_agreement_per_scale) == 7
    assert rep.token_agreement_per_scale[:5] == [1.0] * 5 and rep.token_agreement_per_scale[-1] < 1.0
    assert rep.flop_reduction > 1


@pytest.mark.slow
def test_dense_cache_is_keyed_by_seed(small, monkeypatch):
    var, vae = small
    dense_seeds, one_generation = [], []

    def recording_generate(*args, **kwargs):  # generates once, then hands back the same images: only the seeds matter
        if kwargs["policy"].name == "none":
            dense_seeds.append(kwargs["g_seed"])
        if not one_generation:
            one_generation.append(generate(*args, **{**kwargs, "want_trace": True}))
        return one_generation[0]

    monkeypatch.setattr(sources_module, "generate", recording_generate)
    monkeypatch.setattr(evaluate_module, "real_features",
                        lambda clf, seed, n, batch: torch.randn(n, FEATURE_DIM, generator=torch.Generator().manual_seed(seed)))
    cache, n = EvalCache(), min_samples_for_fid()
    policy = parse_policy("fixed:0,0,0,0,0,0.5,0.5")
    evaluate(var, vae, policy, n_samples=n, batch=n, seed=0, cache=cache)
    evaluate(var, vae, policy, n_samples=n, batch=n, seed=5, cache=cache)
    assert dense_seeds == [0, 5]  # another seed's dense images are generated, not taken from the cache


def test_per_class_table_names_classes_and_misreadings():
    confusion = [[0] * 10 for _ in range(10)]
    for i in range(10):
        confusion[i][i] = 3
    confusion[1][6] = 1  # one of class 1 read as class 6
    rep = EvalReport(policy="none", n_samples=31, source="s", classifier_accuracy=30 / 31, fid_feat=1.0,
                     fid_feat_real_vs_real=0.5, entropy_per_scale=[0.1], flop_reduction=1.0, confusion=confusion)
    text = format_per_class([rep])
    assert CLASS_NAMES[1] in text.splitlines()[1] and "75%" in text.splitlines()[2]
    assert text.splitlines()[-1] == f"most frequent misreading (none): {CLASS_NAMES[1]} as {CLASS_NAMES[6]} 25%"


def test_eval_record_names_the_data_its_columns_were_measured_on():
    confusion = [[3 if i == j else 0 for j in range(10)] for i in range(10)]
    rep = EvalReport(policy="none", n_samples=30, source="s", classifier_accuracy=1.0, fid_feat=1.0,
                     fid_feat_real_vs_real=0.5, entropy_per_scale=[0.1], flop_reduction=1.0, confusion=confusion)
    record = eval_record("m", 1.234, {"samples": 30}, {"psnr_db": 20.0}, [rep])
    assert record["classes"] == list(CLASS_NAMES)
    assert record["data_fingerprint"] == data_fingerprint(IMAGE_SIZE)
    assert len(record["reports"][0]["per_class_accuracy"]) == len(record["classes"])
    assert record["seconds"] == 1.2 and json.loads(json.dumps(record)) == record


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


@pytest.mark.slow
def test_cli_eval_writes_table_json_and_png(tmp_path):
    n = min_samples_for_fid()
    r = run_cli("eval", "--preset", "small", "--samples", n, "--batch", 129, "--json", tmp_path / "e.json",
                "--png", tmp_path / "e.png")
    assert r.exit_code == 0, r.output
    record = json.loads((tmp_path / "e.json").read_text())
    recon, (report,) = record["vqvae_reconstruction"], record["reports"]
    assert report["n_samples"] == n and report["policy"] == "none"
    # the reconstructions' FID_feat is measured on as many images as the samples', against the same real set
    assert recon["n_images"] == n and recon["fid_feat"] > 10 * report["fid_feat_real_vs_real"]  # random VQVAE
    assert f"FID_feat {recon['fid_feat']:.2f}" in r.output
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json", "e.png"]  # no temporary left
