"""The served model's request handling without a server: rows, checks, one call per settings group."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nova_deploy.errors import InvalidArgument
from nova_deploy.export.spec import build_spec
from nova_deploy.models.presets import get_preset
from nova_deploy.serving.requests import Settings, generate_rows, images_uint8, parse_request

SPEC = build_spec(get_preset("small").var, get_preset("small").vae)
NUM_CLASSES = SPEC.var.num_classes


class RecordingPipe:
    """Pipeline stand-in: records each call; image pixel values encode (class, seed)."""
    max_batch = 2

    def __init__(self, fail_policy=None):
        self.calls, self.fail_policy = [], fail_policy

    def generate(self, labels, seeds, cfg, top_k, top_p, draw, policy, want_trace):
        self.calls.append((list(labels), list(seeds), cfg, policy, want_trace))
        if policy == self.fail_policy:
            raise InvalidArgument(f"policy {policy} failed")
        images = torch.stack([torch.full((3, 2, 2), (c * 10 + s % 10) / 255.0) for c, s in zip(labels, seeds)])
        trace = [{"image": i} for i in range(len(labels))] if want_trace else None
        return SimpleNamespace(images=images, trace=trace)


def _request(classes, seeds, **settings):
    inputs = {"class_id": np.array([[c] for c in classes], np.int32), "seed": np.array([[s] for s in seeds], np.int64)}
    for name, value in settings.items():
        text = name in ("policy", "draw")
        inputs[name] = np.full((len(classes), 1), value.encode() if text else value,
                               dtype=np.object_ if text else np.float32)
    return inputs


def test_rows_carry_their_request_settings_and_defaults():
    rows = parse_request(4, _request([1, 2], [7, -8], cfg=3.0), SPEC)
    assert [(r.request, r.row, r.class_id, r.seed) for r in rows] == [(4, 0, 1, 7), (4, 1, 2, -8)]
    assert rows[0].settings == Settings(policy="none", cfg=3.0, top_k=0, top_p=0.0, draw="official")
    fast = parse_request(5, _request([1], [7], draw="inverse-cdf"), SPEC)
    assert fast[0].settings == Settings(draw="inverse-cdf")


@pytest.mark.parametrize("inputs, message", [
    (_request([NUM_CLASSES, NUM_CLASSES + 1], [0, 0]),
     f"class_id [{NUM_CLASSES + 1}] out of range: valid are 0..{NUM_CLASSES - 1} (or {NUM_CLASSES}, the null class)"),
    (_request([1], [0], policy="bogus"), "unknown policy 'bogus'"),
    (_request([1], [0], top_p=1.5), "top_p must be in [0, 1], got 1.5"),
    (_request([1], [0], draw="gumbel"), "draw must be one of official, inverse-cdf, got 'gumbel'"),
    (_request([1], [0], top_k=SPEC.vae.vocab_size + 1), f"top_k must be <= {SPEC.vae.vocab_size}"),
    ({"class_id": np.array([[1]], np.int32)}, "missing input 'seed'"),
    ({"class_id": np.array([[1]], np.int32), "seed": np.array([[1], [2]], np.int64)}, "input 'seed' has shape [2, 1]"),
])
def test_bad_rows_are_refused_naming_the_value(inputs, message):
    with pytest.raises(InvalidArgument) as e:
        parse_request(0, inputs, SPEC)
    assert message in str(e.value)


def test_one_call_per_group_of_equal_settings_at_most_max_batch_each():
    rows = (parse_request(0, _request([1, 2], [1, 2]), SPEC) + parse_request(1, _request([3], [3], cfg=3.0), SPEC)
            + parse_request(2, _request([4], [4]), SPEC))
    pipe = RecordingPipe()
    results = generate_rows(pipe, rows, want_trace=False)
    assert [(c[0], c[1], c[2]) for c in pipe.calls] == [([1, 2], [1, 2], 1.5), ([4], [4], 1.5), ([3], [3], 3.0)]
    assert results[(1, 0)].image_3HW[0, 0, 0] == 33 and results[(2, 0)].image_3HW[0, 0, 0] == 44
    assert results[(0, 1)].image_3HW[0, 0, 0] == 22 and results[(0, 0)].trace_json is None


def test_a_failing_group_fails_only_its_rows():
    rows = parse_request(0, _request([1], [1], policy="nova"), SPEC) + parse_request(1, _request([2], [2]), SPEC)
    results = generate_rows(RecordingPipe(fail_policy="nova"), rows, want_trace=True)
    assert results[(0, 0)].error == "policy nova failed" and results[(0, 0)].image_3HW is None
    assert results[(1, 0)].error is None and '"classes": [2]' in results[(1, 0)].trace_json


def test_images_are_rounded_to_uint8_as_the_pngs():
    images = torch.tensor([0.0, 0.5, 1.2, -0.1, 0.002]).view(1, 1, 1, 5)
    assert images_uint8(images).tolist() == [[[[0, 128, 255, 0, 1]]]]
