"""Requests of the served model, independent of Triton: inputs (numpy arrays, one row per image)
-> checked rows -> one Pipeline call per group of equal settings -> each row's image and trace.

Each image is generated from its own request's seed on its own random stream (Pipeline.generate's
seeds=), so batching requests together changes no image, up to NOVA's batch rule (docs/SERVING.md).
"""
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from nova_deploy.bounds import check_class_ids, check_top_k
from nova_deploy.errors import NovaDeployError, require
from nova_deploy.nova.policy import parse_policy
from nova_deploy.runtime.policy_fit import check_policy_fits
from nova_deploy.sampling import SamplingParams

REQUIRED_INPUTS = ("class_id", "seed")
DEFAULTS = SamplingParams()
DEFAULT_POLICY = "none"


@dataclass(frozen=True)
class Settings:
    """What an image shares with the others of one Pipeline call."""
    policy: str = DEFAULT_POLICY
    cfg: float = DEFAULTS.cfg
    top_k: int = DEFAULTS.top_k
    top_p: float = DEFAULTS.top_p
    draw: str = DEFAULTS.draw


@dataclass(frozen=True)
class Row:
    request: int  # index of the request in the list the server handed over
    row: int  # index of the image in its request
    class_id: int
    seed: int
    settings: Settings


@dataclass
class RowResult:
    image_3HW: Optional[np.ndarray] = None  # uint8
    trace_json: Optional[str] = None
    error: Optional[str] = None


def parse_request(request: int, inputs: Mapping[str, np.ndarray], spec) -> List[Row]:
    """Rows of one request (inputs shaped [batch, 1]); InvalidArgument naming the first bad value."""
    for name in REQUIRED_INPUTS:
        require(name in inputs, f"missing input {name!r}; required: {', '.join(REQUIRED_INPUTS)}")
    n = len(inputs["class_id"])
    for name, value in inputs.items():
        require(value.shape == (n, 1), f"input {name!r} has shape {list(value.shape)}, expected [{n}, 1] "
                                       f"(one value per image, as class_id)")
    num_classes = spec.var.num_classes
    rows = []
    for r in range(n):
        class_id = int(inputs["class_id"][r, 0])
        check_class_ids([class_id], num_classes, "class_id")
        settings = _settings(inputs, r, spec)
        rows.append(Row(request, r, class_id, int(inputs["seed"][r, 0]), settings))
    return rows


def _settings(inputs: Mapping[str, np.ndarray], r: int, spec) -> Settings:
    def value(name, default, cast):
        return cast(inputs[name][r, 0]) if name in inputs else default

    policy = value("policy", DEFAULT_POLICY, _text)
    check_policy_fits(parse_policy(policy), spec)
    settings = Settings(policy, value("cfg", DEFAULTS.cfg, float), value("top_k", DEFAULTS.top_k, int),
                        value("top_p", DEFAULTS.top_p, float), value("draw", DEFAULTS.draw, _text))
    SamplingParams(cfg=settings.cfg, top_k=settings.top_k, top_p=settings.top_p, draw=settings.draw)  # names a bad value
    check_top_k(settings.top_k, spec.vae.vocab_size, "top_k")
    return settings


def _text(b) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)


def generate_rows(pipe, rows: Sequence[Row], want_trace: bool) -> Dict[Tuple[int, int], RowResult]:
    """Every row's result, keyed by (request, row): one Pipeline call per group of equal settings (at
    most pipe.max_batch images each). A call that fails fails only its own rows."""
    groups: Dict[Settings, List[Row]] = defaultdict(list)
    for row in rows:
        groups[row.settings].append(row)
    results: Dict[Tuple[int, int], RowResult] = {}
    for settings, members in groups.items():
        for start in range(0, len(members), pipe.max_batch):
            chunk = members[start:start + pipe.max_batch]
            try:
                out = pipe.generate([m.class_id for m in chunk], seeds=[m.seed for m in chunk], cfg=settings.cfg,
                                    top_k=settings.top_k, top_p=settings.top_p, draw=settings.draw, policy=settings.policy,
                                    want_trace=want_trace)
            except NovaDeployError as e:
                results.update({(m.request, m.row): RowResult(error=str(e)) for m in chunk})
                continue
            images = images_uint8(out.images)
            for b, m in enumerate(chunk):
                trace = None
                if out.trace is not None:
                    trace = json.dumps({"policy": settings.policy, "seed": m.seed, "classes": [m.class_id],
                                        "images": [out.trace[b]]})
                results[(m.request, m.row)] = RowResult(image_3HW=images[b], trace_json=trace)
    return results


def images_uint8(images_B3HW) -> np.ndarray:
    """B 3 H W in [0, 1] -> uint8, rounded as the PNGs `generate` writes."""
    return images_B3HW.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()

