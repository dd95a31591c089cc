"""Policies decide, the scale step executes: dense stays bit-identical, pruning does what it says."""
import pytest
import torch

from nova_deploy.errors import InvalidArgument
from nova_deploy.flops import dense_kept, transformer_flops
from model_factories import randomised_pair
from nova_deploy.nova.config import FastVARConfig, NovaConfig
from nova_deploy.nova.policy import POLICY_KINDS, POLICY_NAMES, Policy, make_policy, parse_policy
from nova_deploy.sampler import autoregressive_infer_cfg, generate


@pytest.fixture(scope="module")
def small():
    var, _ = randomised_pair("small")  # official init would make pruning invisible (AdaLN gammas ~1e-5)
    return var


def test_policy_none_is_bit_identical_to_reference(golden_models):
    var, _ = golden_models
    ref = autoregressive_infer_cfg(var, 2, torch.tensor([3, 7]), g_seed=4, top_k=5)
    from nova_deploy.sampling import SamplingParams
    ours = generate(var, 2, torch.tensor([3, 7]), g_seed=4, params=SamplingParams(top_k=5),
                    policy=parse_policy("none"), want_trace=True)
    assert torch.equal(ref, ours.images)


def test_fixed_policy_prunes_exactly_the_requested_counts(small):
    res = generate(small, 2, torch.tensor([0, 1]), g_seed=0, policy=parse_policy("fixed:0,0,0,0,0,0.5,0.25"),
                   want_trace=True)
    kept = res.trace[0]["kept_per_scale_layer"]
    assert kept[5] == [18] * small.depth and kept[6] == [48] * small.depth
    assert kept[:5] == dense_kept(small.patch_nums, small.depth)[:5]
    assert res.trace[0]["transformer_flops_pruned"] == transformer_flops(kept, rows=2, C=small.C)
    assert res.trace[0]["flop_reduction"] > 1.0


def test_pruning_changes_images_but_not_the_first_scales(small):
    dense = generate(small, 2, torch.tensor([0, 1]), g_seed=0)
    pruned = generate(small, 2, torch.tensor([0, 1]), g_seed=0, policy=parse_policy("fixed:0,0,0,0,0,0.5,0.5"))
    for si in range(5):
        assert torch.equal(dense.idx_Bl[si], pruned.idx_Bl[si])
    assert not torch.equal(dense.images, pruned.images)


def test_nova_trace_records_decisions(small):
    pol = Policy("nova", NovaConfig(min_activation_scale=2, fallback_activation_scale=4))
    res = generate(small, 3, torch.tensor([0, 1, 2]), g_seed=1, policy=pol, want_trace=True)
    K = len(small.patch_nums)
    for img in res.trace:
        assert len(img["entropy_curve"]) == K and all(0 <= e <= 1 for e in img["entropy_curve"])
        assert 2 <= img["activation_scale"] <= 4
        assert img["scale_ratio"][: img["activation_scale"]] == [0.0] * img["activation_scale"]
    kept = res.trace[0]["kept_per_scale_layer"]
    assert all(1 <= k <= pn * pn for pn, row in zip(small.patch_nums, kept) for k in row)
    assert sum(map(sum, kept)) < sum(map(sum, dense_kept(small.patch_nums, small.depth)))


def test_fastvar_prunes_the_last_scales_only(small):
    res = generate(small, 1, torch.tensor([3]), g_seed=0, policy=parse_policy("fastvar"), want_trace=True)
    kept = res.trace[0]["kept_per_scale_layer"]
    assert kept[:-2] == dense_kept(small.patch_nums, small.depth)[:-2]
    assert kept[-2][0] < 36 and kept[-1][0] < 64


@pytest.mark.parametrize("text, message", [
    ("sparse", "unknown policy 'sparse'"),
    ("fixed", "needs per-scale ratios"),
    ("fixed:0,0,1.2", "must be in [0, 1)"),
])
def test_bad_policy_text(text, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace("[", r"\[").replace(")", r"\)")):
        parse_policy(text)


VALID_FORMS = "valid: none, nova[:FIELD=VALUE,...], nova-summary[:FIELD=VALUE,...], fastvar[:FIELD=VALUE,...], fixed:R0,R1,..."


@pytest.mark.parametrize("text, message", [
    ("nova:xyz", "policy nova: 'xyz' is not FIELD=VALUE with FIELD one of min_activation_scale"),
    ("nova:base_ratio=most", "policy nova: base_ratio must be a float, got 'most'"),
    ("none:xyz", "policy none takes no argument, got none:xyz"),
    ("fastvar:1", "policy fastvar: '1' is not FIELD=VALUE with FIELD one of start_scale, ratios"),
    ("fastvar:ratios=0.4/most", "policy fastvar: ratios must be numbers separated by /, got '0.4/most'"),
    ("nova:", "policy nova: give FIELD=VALUE after the colon, or no colon"),
    ("sparse", "unknown policy 'sparse'"),
    ("fixed", "policy fixed needs per-scale ratios"),
    ("fixed:nova-ref", "fixed ratios must be comma-separated numbers"),
])
def test_policy_text_is_parsed_strictly_and_errors_list_the_valid_forms(text, message):
    with pytest.raises(InvalidArgument) as err:
        parse_policy(text)
    line = str(err.value)
    assert "\n" not in line and line.startswith(message) and line.endswith(VALID_FORMS)


def test_named_forms_of_the_caller_are_listed_too():
    with pytest.raises(InvalidArgument, match=r"valid: none, nova\[:FIELD=VALUE,\.\.\.\], nova-summary\[:FIELD=VALUE,\.\.\.\], fastvar\[:FIELD=VALUE,\.\.\.\], fixed:R0,R1,\.\.\., fixed:nova-ref$"):
        parse_policy("fixed:nova-rf", also_valid=("fixed:nova-ref",))


@pytest.mark.parametrize("text", ["none", "nova", "fastvar", "fixed:0,0,0,0,0,0.5,0.25", "fixed:0,0.1,0.333,1e-09",
                                  "nova-summary", "nova-summary:rho=0.5,growth_sign=1,ratio_reading=prune,layer_linkage=false",
                                  "nova:base_ratio=0.2,r_max=0.5,importance=distance", "fastvar:start_scale=-3,ratios=0.5/0.7/0.8"])
def test_text_form_round_trips(text):
    policy = parse_policy(text)
    assert policy.to_text() == text
    assert parse_policy(policy.to_text()) == policy


def test_a_config_without_text_form_is_not_printed_as_its_default():
    assert Policy("nova", NovaConfig(base_ratio=0.2)).to_text() == "nova:base_ratio=0.2"
    with pytest.raises(InvalidArgument, match="no text form"):
        make_policy("fixed", "0,0.5", upsample_mode="nearest").to_text()


def test_every_registered_kind_brings_config_decider_and_text_form():
    assert POLICY_NAMES == ("none", "nova", "nova-summary", "fastvar", "fixed")
    for name, kind in POLICY_KINDS.items():
        assert kind.name == name
        policy = parse_policy({"fixed": "fixed:0,0,0,0,0,0.5,0.5"}.get(name, name))
        assert policy.kind is kind
        decider = policy.begin(1, (1, 2, 3, 4, 5, 6, 8), 2)
        assert type(decider).__name__.lower().startswith(name.replace("-", "") if name != "none" else "dense")


@pytest.mark.parametrize("text, first", [
    ("none", None), ("nova", 2), ("nova-summary", 2), ("nova-summary:min_activation_scale=4", 4), ("fastvar", 5), ("fixed:0,0,0,0,0,0,0", None), ("fixed:0,0,0,0.1,0,0,0.2", 3),
])
def test_earliest_pruned_scale(text, first):
    assert parse_policy(text).earliest_pruned_scale(7) == first


def test_policy_config_must_match_its_kind():
    with pytest.raises(InvalidArgument, match="policy nova needs a NovaConfig, got FastVARConfig"):
        Policy("nova", FastVARConfig())
    with pytest.raises(InvalidArgument, match="unknown policy 'sparse'"):
        Policy("sparse")


def test_fixed_ratio_vector_of_wrong_length_is_rejected(small):
    with pytest.raises(InvalidArgument, match="7"):
        generate(small, 1, torch.tensor([0]), policy=parse_policy("fixed:0,0.1,0.2"))


@pytest.mark.parametrize("importance", ["entropy", "distance"])
def test_nova_importance_chooses_which_tokens_not_how_many(importance):
    """importance="distance" (the ablation) keeps FastVAR's farthest-from-mean tokens under NOVA's
    own schedule: the same kept counts, other positions."""
    from nova_deploy.nova.selection import fastvar_importance, importance_from_entropy, nested_kept

    torch.manual_seed(0)
    patch_nums, depth, B, C, V = (1, 2, 3, 4), 3, 2, 8, 16
    cfg = NovaConfig(min_activation_scale=2, fallback_activation_scale=2, importance=importance)
    plans = {}
    for imp in ("entropy", importance):
        torch.manual_seed(0)
        decider = Policy("nova", NovaConfig(**{**cfg.__dict__, "importance": imp})).begin(B, patch_nums, depth)
        for si in range(2):
            l = patch_nums[si] ** 2
            assert decider.plan(si, torch.randn(2 * B, l, C)) is None
            branches = [torch.randn(2 * B, l, C) for _ in range(depth)]
            decider.observe(si, torch.randn(B, l, V), branches, branches)
        x = torch.randn(2 * B, 9, C)
        plans[imp] = (decider.plan(2, x), x, decider._H_prev_Bl)
    plan, x, H_prev = plans[importance]
    assert plan.kept_N == plans["entropy"][0].kept_N and min(plan.kept_N) < 9
    imp_Bl = fastvar_importance(x[:B]) if importance == "distance" else importance_from_entropy(H_prev, 2, 3, "bicubic")
    for got, want in zip(plan.idx_N, nested_kept(imp_Bl, plan.kept_N)):
        assert got is None or torch.equal(got, want)
    if importance == "distance":
        assert any(not torch.equal(a, b) for a, b in zip(plan.idx_N, plans["entropy"][0].idx_N) if a is not None)


def test_nova_importance_must_be_known():
    with pytest.raises(InvalidArgument, match="importance must be one of entropy, distance"):
        NovaConfig(importance="random")
