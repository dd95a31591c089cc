"""Optimization profiles from the export spec, narrowed to --max-batch, and the check that a
request fits the profile an engine was built with.

The spec (GraphSpec.profile) is the one source of shape ranges: the ONNX dynamic axes, the export
validation and these profiles all read it. --max-batch may only narrow it: an engine cannot accept
shapes its ONNX graph was not validated for.
"""
from dataclasses import replace
from typing import Dict, Mapping, Sequence, Tuple

from nova_deploy.errors import InvalidArgument
from nova_deploy.export.spec import BATCH, Dim, ExportSpec, GraphSpec

Profile = Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]]  # input -> (min, opt, max)


def check_max_batch(spec: ExportSpec, max_batch) -> int:
    if max_batch is None:
        return spec.max_batch
    ok = isinstance(max_batch, int) and not isinstance(max_batch, bool) and 1 <= max_batch <= spec.max_batch
    if not ok:
        raise InvalidArgument(f"--max-batch {max_batch!r}: this export accepts 1..{spec.max_batch} images per call "
                              f"(it was exported with --max-batch {spec.max_batch}); re-export for a larger batch")
    return max_batch


def narrow_to_batch(g: GraphSpec, max_batch: int) -> GraphSpec:
    """g with its batch dims (batch, and batch2 = 2 x batch CFG rows) capped at max_batch images."""
    def cap(d: Dim) -> Dim:
        rows = 1 if d.name == BATCH else d.factor if d.base == BATCH else None
        if rows is None:
            return d
        hi = min(d.max, rows * max_batch)
        return replace(d, max=hi, opt=min(d.opt, hi), note=d.note + f"; engine built for --max-batch {max_batch}")
    return replace(g, dims=tuple(cap(d) for d in g.dims))


def profile_to_json(profile: Profile) -> Dict[str, Dict[str, list]]:
    return {name: {"min": list(lo), "opt": list(opt), "max": list(hi)} for name, (lo, opt, hi) in profile.items()}


def profile_from_json(raw: Mapping[str, Mapping[str, Sequence[int]]]) -> Profile:
    return {name: (tuple(r["min"]), tuple(r["opt"]), tuple(r["max"])) for name, r in raw.items()}


def check_in_profile(graph: str, profile: Profile, shapes: Mapping[str, Sequence[int]]) -> None:
    """InvalidArgument naming the first input whose shape is outside the engine's profile, with the range."""
    for name, shape in shapes.items():
        lo, _, hi = profile[name]
        for axis, (got, a, b) in enumerate(zip(shape, lo, hi)):
            if not a <= got <= b:
                raise InvalidArgument(
                    f"graph {graph}: input {name} axis {axis} is {got}, outside the engine's profile {a}..{b} "
                    f"(min {list(lo)}, max {list(hi)}); rebuild with `nova-deploy build-engines` for that range "
                    f"(--max-batch up to the export's)")
