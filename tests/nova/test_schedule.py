import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from nova_deploy.errors import InvalidArgument
from nova_deploy.nova.config import FastVARConfig, FixedConfig, NovaConfig
from nova_deploy.nova.policy import make_policy
from nova_deploy.nova.schedule import batch_kept_counts, kept_counts, layer_ratios, scale_ratio, scale_ratio_B

torch.set_num_threads(1)
FAST = settings(max_examples=150, deadline=None)


# ---------------------------------------------------------------- scale ratio
def test_scale_ratio_before_and_after_activation():
    cfg = NovaConfig(base_ratio=0.3, growth_per_scale=0.1, entropy_gain=0.5, r_max=0.75)
    assert scale_ratio(5, activation_si=-1, entropy_growth=0.2, cfg=cfg) == 0.0
    assert scale_ratio(5, activation_si=6, entropy_growth=0.2, cfg=cfg) == 0.0
    assert scale_ratio(6, activation_si=6, entropy_growth=0.0, cfg=cfg) == pytest.approx(0.3)
    assert scale_ratio(7, activation_si=6, entropy_growth=0.1, cfg=cfg) == pytest.approx(0.45)
    assert scale_ratio(7, activation_si=6, entropy_growth=-0.3, cfg=cfg) == pytest.approx(0.4)  # negative: 0
    assert scale_ratio(9, activation_si=6, entropy_growth=0.4, cfg=cfg) == 0.75  # capped


def test_batched_scale_ratio_matches_the_scalar_one():
    cfg = NovaConfig()
    act, growth = torch.tensor([-1, 4, 6, 8]), torch.tensor([0.3, -0.1, 0.2, 0.9])
    expected = [scale_ratio(7, int(a), float(g), cfg) for a, g in zip(act, growth)]
    assert scale_ratio_B(7, act, growth, cfg).tolist() == pytest.approx(expected)


# ---------------------------------------------------------------- layer ratios
stats = st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=2, max_size=24).map(
    lambda xs: torch.tensor(xs, dtype=torch.float64))
configs = st.builds(NovaConfig, r_max=st.floats(0.05, 0.95), layer_spread=st.floats(0.0, 1.0),
                    base_ratio=st.just(0.0), protect_first_layers=st.integers(0, 3))


@FAST
@given(stat_N=stats, cfg=configs, frac=st.floats(0.0, 1.0))
def test_layer_ratios_average_to_the_scale_ratio_within_bounds(stat_N, cfg, frac):
    if cfg.protect_first_layers >= len(stat_N):
        return
    r = frac * cfg.r_max
    ratios = layer_ratios(r, stat_N, cfg)
    first = cfg.protect_first_layers
    assert ratios.shape == stat_N.shape
    assert (ratios[:first] == 0).all()
    assert abs(ratios[first:].mean().item() - r) < 1e-6
    assert (ratios >= 0).all() and (ratios <= cfg.r_max + 1e-12).all()


def test_layers_that_change_the_residual_less_are_pruned_more():
    cfg = NovaConfig(layer_spread=1.0, r_max=0.9)
    ratios = layer_ratios(0.3, torch.tensor([1.0, 2.0, 3.0]), cfg)
    assert ratios.tolist() == pytest.approx([0.6, 0.3, 0.0])  # spread 1: [0, 2r]
    assert layer_ratios(0.3, torch.tensor([2.0, 2.0, 2.0]), cfg).tolist() == pytest.approx([0.3] * 3)
    capped = layer_ratios(0.6, torch.tensor([1.0, 2.0, 3.0]), cfg)  # spread limited to 0.9/0.6 - 1
    assert capped.tolist() == pytest.approx([0.9, 0.6, 0.3])


# ---------------------------------------------------------------- kept counts
@FAST
@given(n=st.integers(1, 300), ratios=st.lists(st.floats(0.0, 0.999), min_size=1, max_size=24))
def test_kept_counts_stay_in_range_and_round_the_total(n, ratios):
    kept = kept_counts(n, ratios)
    assert len(kept) == len(ratios) and all(1 <= k <= n for k in kept)
    pruned = [n - k for k in kept]
    for p, r in zip(pruned, ratios):
        assert math.floor(r * n) <= p <= math.ceil(r * n)  # each layer is rounded to a neighbouring integer
    if all(r * n <= n - 1 for r in ratios):  # the keep-one-token cap does not bind
        assert sum(pruned) == math.floor(sum(r * n for r in ratios) + 0.5)


@FAST
@given(stat_N=stats, cfg=configs, frac=st.floats(0.0, 1.0), n=st.integers(1, 300))
def test_rounded_mean_stays_within_one_token_of_the_scale_ratio(stat_N, cfg, frac, n):
    if cfg.protect_first_layers >= len(stat_N):
        return
    r = frac * cfg.r_max
    pruned = [n - k for k in kept_counts(n, layer_ratios(r, stat_N, cfg))][cfg.protect_first_layers:]
    assert abs(sum(pruned) / len(pruned) / n - r) <= 1 / n


@FAST
@given(stat_N=stats, cfg=configs, lo=st.floats(0.0, 1.0), hi=st.floats(0.0, 1.0), n=st.integers(1, 300))
def test_a_larger_scale_ratio_never_keeps_more_tokens(stat_N, cfg, lo, hi, n):
    if cfg.protect_first_layers >= len(stat_N):
        return
    lo, hi = sorted((lo, hi))
    if hi - lo < 1e-9:  # ratios a few ulps apart may round either way
        return
    kept_lo = sum(kept_counts(n, layer_ratios(lo * cfg.r_max, stat_N, cfg)))
    kept_hi = sum(kept_counts(n, layer_ratios(hi * cfg.r_max, stat_N, cfg)))
    assert kept_hi <= kept_lo


def test_kept_counts_examples():
    assert kept_counts(10, [0.25, 0.25, 0.25, 0.25]) == [7, 7, 8, 8]  # 10 tokens pruned, ties: lower layer first
    assert kept_counts(1, [0.9, 0.9]) == [1, 1]  # a layer always computes one token
    assert kept_counts(256, torch.zeros(3, dtype=torch.float64)) == [256, 256, 256]
    with pytest.raises(InvalidArgument, match=r"ratios_N\[1\].*\[0, 1\)"):
        kept_counts(10, [0.2, 1.0])


def test_batch_shares_the_least_pruned_count_per_layer():
    assert batch_kept_counts([[10, 4, 7], [6, 9, 7]]) == [10, 9, 7]
    assert batch_kept_counts(torch.tensor([[3, 5]])) == [3, 5]


# ---------------------------------------------------------------- configs (validated on construction)
@pytest.mark.parametrize("field,value", [("base_ratio", 1.0), ("base_ratio", -0.1), ("r_max", 1.0),
                                         ("layer_spread", 1.5), ("entropy_gain", -1.0),
                                         ("growth_per_scale", math.nan), ("upsample_mode", "cubic"),
                                         ("protect_first_layers", -1), ("min_activation_scale", 1.5)])
def test_nova_config_rejects_out_of_range_fields(field, value):
    with pytest.raises(InvalidArgument, match=field):
        NovaConfig(**{field: value})


def test_nova_config_needs_r_max_above_base_ratio():
    with pytest.raises(InvalidArgument, match="r_max"):
        NovaConfig(base_ratio=0.5, r_max=0.4)


def test_nova_config_validate_for_the_model():
    NovaConfig().validate_for(num_scales=10, depth=16)
    assert NovaConfig().activation_bounds(10) == (2, 8)
    with pytest.raises(InvalidArgument, match="beyond"):
        NovaConfig(fallback_activation_scale=-11).validate_for(10, 16)
    with pytest.raises(InvalidArgument, match="beyond"):
        NovaConfig(min_activation_scale=10, fallback_activation_scale=12).validate_for(10, 16)
    with pytest.raises(InvalidArgument, match="min_activation_scale=9 must be <="):
        NovaConfig(min_activation_scale=9).validate_for(10, 16)
    with pytest.raises(InvalidArgument, match="protect_first_layers=16"):
        NovaConfig(protect_first_layers=16).validate_for(10, 16)


def test_fastvar_config():
    cfg = FastVARConfig()
    cfg.validate_for(10, 16)
    assert [cfg.ratio_at(si, 10) for si in (7, 8, 9)] == [0.0, 0.4, 0.5]
    with pytest.raises(InvalidArgument, match="prunes 3 scales"):
        FastVARConfig(start_scale=-3).validate_for(10, 16)
    with pytest.raises(InvalidArgument, match=r"ratios\[1\] must be in \[0, 1\), got 1.2"):
        FastVARConfig(ratios=(0.4, 1.2))


def test_fixed_config_parse_and_shapes():
    cfg = make_policy("fixed", "0,0,0,0,0,0.2,0.4").config
    assert cfg.scale_ratios == (0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.4)
    cfg.validate_for(7, 4)
    with pytest.raises(InvalidArgument, match="7 entries; the model has 10 scales"):
        cfg.validate_for(10, 4)
    with pytest.raises(InvalidArgument, match="comma-separated"):
        make_policy("fixed", "0,0.2,x")
    with pytest.raises(InvalidArgument, match=r"scale_ratios\[1\]"):
        make_policy("fixed", "0,1.5")
    layered = FixedConfig(scale_ratios=(0.0, 0.2), layer_ratios=[[0.0, 0.0, 0.0], [0.1, 0.2]])
    with pytest.raises(InvalidArgument, match=r"layer_ratios\[1\] has 2 entries; the model has 3 layers"):
        layered.validate_for(2, 3)
    with pytest.raises(InvalidArgument, match="layer_ratios has 2 rows; the model has 3 scales"):
        FixedConfig(scale_ratios=(0.0, 0.2, 0.3), layer_ratios=layered.layer_ratios).validate_for(3, 2)
