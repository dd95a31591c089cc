import math

import pytest
import torch

from nova_deploy.errors import InvalidArgument
from nova_deploy.nova.activation import ActivationTracker, find_activation_scale
from nova_deploy.nova.config import NovaConfig

torch.set_num_threads(1)
NUM_SCALES = 10  # VAR-d16..d30: patch_nums 1,2,3,4,5,6,8,10,13,16


def sigmoid_curve(center: float) -> torch.Tensor:
    return torch.tensor([1 / (1 + math.exp(-(j - center))) for j in range(NUM_SCALES)])


def convex_curve() -> torch.Tensor:
    return torch.tensor([0.01 * j * j for j in range(NUM_SCALES)])


def run_tracker(curve_Bs: torch.Tensor, cfg: NovaConfig) -> ActivationTracker:
    tracker = ActivationTracker(curve_Bs.shape[0], cfg, NUM_SCALES)
    for si in range(NUM_SCALES):
        tracker.observe(si, curve_Bs[:, si])
    return tracker


def test_sigmoid_activates_just_after_its_steepest_growth():
    e = sigmoid_curve(center=4.5)
    growth = e[1:] - e[:-1]  # growth[i] = e[i+1] - e[i]
    steepest = int(growth.argmax()) + 1  # the scale the largest growth leads into
    assert steepest == 5
    tracker = run_tracker(e.unsqueeze(0), NovaConfig())
    # the peak at 5 is only confirmed after scale 6 ran (growth into 6 is smaller): scale 7 prunes
    assert tracker.activation_B.tolist() == [steepest + 2]


def test_decision_is_made_as_soon_as_the_inflection_is_seen():
    tracker = ActivationTracker(1, NovaConfig(), NUM_SCALES)
    e = sigmoid_curve(center=4.5)
    for si in range(6):
        tracker.observe(si, e[si:si + 1])
        assert tracker.activation_B.tolist() == [-1]
    tracker.observe(6, e[6:7])
    assert tracker.activation_B.tolist() == [7]
    assert not tracker.is_active(6).item() and tracker.is_active(7).item() and tracker.is_active(9).item()


def test_convex_curve_activates_at_the_fallback():
    assert run_tracker(convex_curve().unsqueeze(0), NovaConfig()).activation_B.tolist() == [NUM_SCALES - 2]
    cfg = NovaConfig(fallback_activation_scale=6)
    tracker = ActivationTracker(1, cfg, NUM_SCALES)
    for si in range(6):
        tracker.observe(si, convex_curve()[si:si + 1])
    assert tracker.activation_B.tolist() == [6] and tracker.is_active(6).item()


def test_an_inflection_after_the_fallback_is_ignored():
    e = sigmoid_curve(center=7.5)  # growth peaks into scale 8: inflection seen at scale 9
    assert find_activation_scale(e.unsqueeze(0), NovaConfig(), NUM_SCALES).tolist() == [NUM_SCALES - 2]


def test_min_activation_scale_is_respected():
    e = sigmoid_curve(center=1.5)  # growth peaks into scale 2: inflection at 3, activation 4
    assert run_tracker(e.unsqueeze(0), NovaConfig()).activation_B.tolist() == [4]
    assert run_tracker(e.unsqueeze(0), NovaConfig(min_activation_scale=6)).activation_B.tolist() == [6]


def test_samples_of_a_batch_are_independent():
    curves = torch.stack([sigmoid_curve(4.5), convex_curve(), sigmoid_curve(1.5)])
    tracker = run_tracker(curves, NovaConfig())
    assert tracker.activation_B.tolist() == [7, 8, 4]
    assert tracker.is_active(7).tolist() == [True, False, True]


def test_a_decision_never_changes():
    tracker = ActivationTracker(1, NovaConfig(), NUM_SCALES)
    e = sigmoid_curve(1.5)
    for si in range(4):
        tracker.observe(si, e[si:si + 1])
    assert tracker.activation_B.tolist() == [4]
    for si, value in zip(range(4, NUM_SCALES), [0.0, 5.0, 0.0, 9.0, 0.0, 20.0]):  # wild later curve
        tracker.observe(si, torch.tensor([value]))
        assert tracker.activation_B.tolist() == [4]


def test_entropy_growth_since_activation():
    curves = torch.stack([sigmoid_curve(1.5), convex_curve()])
    tracker = run_tracker(curves, NovaConfig())  # activations 4 and 8
    growth = tracker.entropy_growth(6)
    assert growth[0].item() == pytest.approx((curves[0, 5] - curves[0, 3]).item())
    assert growth[1].item() == 0.0  # not active yet


def test_fallback_zero_activates_before_any_scale():
    tracker = ActivationTracker(2, NovaConfig(min_activation_scale=0, fallback_activation_scale=0), NUM_SCALES)
    assert tracker.activation_B.tolist() == [0, 0] and tracker.is_active(0).all()


def test_bad_use_is_rejected():
    tracker = ActivationTracker(1, NovaConfig(), NUM_SCALES)
    with pytest.raises(InvalidArgument, match="expected scale 0"):
        tracker.observe(1, torch.tensor([0.1]))
    with pytest.raises(InvalidArgument, match="beyond"):
        ActivationTracker(1, NovaConfig(fallback_activation_scale=12), NUM_SCALES)
