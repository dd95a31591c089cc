"""NOVA as the third-party summary describes it: growth-rate activation, the sigmoid ratio law under
each reading, layer linkage by channel entropy, and its policy text form."""
import math

import pytest
import torch

from nova_deploy.errors import InvalidArgument
from nova_deploy.nova.config import NovaSummaryConfig
from nova_deploy.nova.policy import parse_policy
from nova_deploy.nova.summary import (UNDECIDED, GrowthActivationTracker, channel_entropy_BN, linked_layer_ratios,
                                      summary_scale_ratio_B)


def _track(curve, cfg=NovaSummaryConfig(), upto=None):
    tracker = GrowthActivationTracker(1, cfg, len(curve))
    for si, e in enumerate(curve[:upto]):
        tracker.observe(si, torch.tensor([e], dtype=torch.float64))
    return tracker


def test_activation_waits_for_the_two_scale_average_then_starts_one_scale_after_it():
    # growths g1..g6: 0.2, 0.1, 0.02, 0.01, 0.0, 0.0; baseline (m=1) 0.2; (g2 + g3) / 2 = 0.06 < 0.2: t* = 2
    curve = [0.5, 0.7, 0.8, 0.82, 0.83, 0.83, 0.83, 0.83, 0.83, 0.83]
    assert _track(curve, upto=3).activation_B.tolist() == [UNDECIDED]  # g3 not known yet
    tracker = _track(curve, upto=4)
    assert tracker.t_star_B.tolist() == [2] and tracker.activation_B.tolist() == [4]
    assert not tracker.is_active(3).item() and tracker.is_active(4).item()
    # m = 2: baseline (0.2 + 0.1) / 2 = 0.15; t starts at 3: (g3 + g4) / 2 = 0.015: t* = 3, pruning from 5
    tracker = _track(curve, NovaSummaryConfig(baseline_growths=2))
    assert tracker.t_star_B.tolist() == [3] and tracker.activation_B.tolist() == [5]


def test_without_a_drop_below_the_baseline_pruning_starts_at_the_fallback_scale():
    curve = [0.1, 0.15, 0.25, 0.4, 0.6, 0.85, 0.9, 0.95]  # growths rise: never below g1's 0.05
    assert _track(curve, upto=5).activation_B.tolist() == [UNDECIDED]
    tracker = _track(curve, upto=6)  # the next scale to run is the fallback, scale 6 of 8
    assert tracker.activation_B.tolist() == [6] and tracker.t_star_B.tolist() == [4]


def test_min_activation_scale_delays_a_found_activation():
    curve = [0.5, 0.7, 0.8, 0.82, 0.83, 0.83, 0.83, 0.83, 0.83, 0.83]
    tracker = _track(curve, NovaSummaryConfig(min_activation_scale=6))
    assert tracker.t_star_B.tolist() == [2] and tracker.activation_B.tolist() == [6]


@pytest.mark.parametrize("reading, sign", [("keep", -1), ("keep", 1), ("prune", -1), ("prune", 1)])
def test_ratio_law_under_each_reading(reading, sign):
    curve = [0.5, 0.7, 0.8, 0.82, 0.83, 0.84, 0.9, 0.95, 0.95, 0.95]
    cfg = NovaSummaryConfig(rho=2.0, lam=3.0, growth_sign=sign, ratio_reading=reading, r_max=0.9)
    tracker = _track(curve, cfg, upto=7)  # t* = 2, active from 4; before scale 7 the latest growth is g6 = 0.06
    z = 2.0 * (2 + 1) / 7 + sign * 3.0 * math.tanh(0.9 - 0.84)
    kept_fraction = 1 / (1 + math.exp(-z))
    want = 1 - kept_fraction if reading == "keep" else kept_fraction
    assert summary_scale_ratio_B(7, tracker, cfg).item() == pytest.approx(min(want, 0.9), abs=1e-12)
    assert summary_scale_ratio_B(3, tracker, cfg).item() == 0.0  # not active yet


def test_the_keep_reading_prunes_more_at_later_scales():
    curve = [0.5, 0.7, 0.8, 0.82, 0.83, 0.83, 0.83, 0.83, 0.83, 0.83]
    cfg = NovaSummaryConfig(rho=2.0, lam=0.0)
    tracker = _track(curve, cfg)
    ratios = [summary_scale_ratio_B(si, tracker, cfg).item() for si in range(4, 10)]
    assert all(a < b for a, b in zip(ratios, ratios[1:]))


def test_layer_linkage_prunes_layers_above_the_earlier_mean_less():
    cfg = NovaSummaryConfig(r_max=0.75)
    got = linked_layer_ratios(0.4, torch.tensor([0.5, 0.5, 0.9, 0.1], dtype=torch.float64), cfg).tolist()
    # layer 2: kept 0.6 * (1 + 0.4 / 1.4); layer 3: kept 0.6 * (1 + (0.1 - 19 / 30) / (0.1 + 19 / 30)) -> r_max
    assert got[:2] == [0.4, 0.4]
    assert got[2] == pytest.approx(1 - 0.6 * (1 + 0.4 / 1.4), abs=1e-12)
    assert got[3] == 0.75
    assert linked_layer_ratios(0.4, torch.tensor([0.5, 0.5, 0.9, 0.1]), NovaSummaryConfig(layer_linkage=False)).tolist() == [0.4] * 4
    assert linked_layer_ratios(0.0, torch.tensor([0.5, 0.9]), cfg).tolist() == [0.0, 0.0]


def test_channel_entropy_is_0_for_one_channel_and_1_for_equal_channels():
    one_hot = torch.zeros(2, 3, 8)
    one_hot[..., 5] = 2.0
    equal = torch.full((2, 3, 8), -0.5)
    h = channel_entropy_BN([one_hot, equal, torch.zeros(2, 3, 8)], batch=1)
    assert h.shape == (1, 3)
    assert h[0, 0].item() == 0.0 and h[0, 1].item() == pytest.approx(1.0, abs=1e-6) and h[0, 2].item() == 0.0


@pytest.mark.parametrize("text, message", [
    ("nova-summary:rho", "'rho' is not FIELD=VALUE"),
    ("nova-summary:speed=2", "'speed=2' is not FIELD=VALUE with FIELD one of min_activation_scale"),
    ("nova-summary:rho=fast", "rho must be a float, got 'fast'"),
    ("nova-summary:layer_linkage=yes", "layer_linkage must be true or false"),
    ("nova-summary:growth_sign=2", "growth_sign must be -1 or 1, got 2"),
    ("nova-summary:ratio_reading=both", "ratio_reading must be one of keep, prune"),
])
def test_bad_summary_text_names_the_field_and_what_is_valid(text, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_policy(text)
