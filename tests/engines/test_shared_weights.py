"""--weights shared: weights that several graphs use are engine inputs, held once, not plan bytes."""
import json

import numpy as np
import pytest
import torch

from conftest import TARGET
from nova_deploy.engines.build_dir import build_engines
from nova_deploy.engines.cache_key import BuildOptions
from nova_deploy.engines.errors import EngineError
from nova_deploy.engines.io_plan import match_engine_io
from nova_deploy.engines.store import sidecar_path
from nova_deploy.engines.targets import parse_targets
from nova_deploy.engines.weight_inputs import (DEVICE_ALIGN, WeightInput, check_in_file, device_weights,
                                               place_weights)
from nova_deploy.artifacts.manifest import read_manifest
from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.export.manifest import spec_from_manifest
from nova_deploy.export.shared_weights import external_initializers


def lifted_of(result):
    side = json.loads(sidecar_path(result.plan).read_text())
    return [WeightInput.from_json(w) for w in side["weight_inputs"]]


def test_weights_the_scale_graphs_share_are_inputs_of_both(built):
    path, results = built
    by = {r.graph: lifted_of(r) for r in results}
    keys = {g: {w.key for w in ws} for g, ws in by.items()}
    assert by["decoder"] == []  # used by the decoder alone: stays embedded
    assert keys["scale_00"] == keys["scale_01"] and len(keys["scale_00"]) >= 4 * 2  # qkv, proj, fc1, fc2 x depth
    on_disk = {(off, length, dtype, tuple(dims)) for _, off, length, dtype, dims in external_initializers(path / "scale_01.onnx")}
    assert keys["scale_01"] == on_disk  # every block weight of scale_01 is also scale_00's


def test_shared_plans_do_not_hold_the_shared_weights(built_copy, rtx):
    targets = parse_targets(rtx, [TARGET])
    shared = {r.graph: r for r in build_engines(built_copy, rtx, targets, graphs=["scale_01"])}["scale_01"]
    lifted_bytes = sum(w.length for w in lifted_of(shared))
    embedded = build_engines(built_copy, rtx, targets, BuildOptions(weights="embedded"), graphs=["scale_01"])[0]
    assert embedded.built and "options" in embedded.reason and lifted_of(embedded) == []
    assert embedded.plan_bytes - shared.plan_bytes > 0.8 * lifted_bytes, (embedded.plan_bytes, shared.plan_bytes)


def test_device_weights_hold_each_shared_tensor_once(built):
    path, results = built
    per_engine = [lifted_of(r) for r in results]
    placement = place_weights(per_engine)
    distinct = {w.key: w.length for ws in per_engine for w in ws}
    assert len(placement.offsets) == len(distinct)
    assert sum(distinct.values()) <= placement.total_bytes < sum(distinct.values()) + DEVICE_ALIGN * len(distinct)
    assert sum(w.length for ws in per_engine for w in ws) >= 2 * sum(distinct.values())  # two scale graphs
    assert all(at % DEVICE_ALIGN == 0 for at in placement.offsets.values())
    buffer = device_weights(path / WEIGHTS_FILE, placement, "cpu")
    raw = np.fromfile(path / WEIGHTS_FILE, dtype=np.uint8)
    for (offset, length, _, _), at in placement.offsets.items():
        assert torch.equal(buffer[at:at + length], torch.from_numpy(raw[offset:offset + length]))


def test_engine_io_includes_the_weights_its_sidecar_lists(built):
    path, results = built
    spec = spec_from_manifest(read_manifest(path))
    g = spec.graph("scale_01")
    weights = [w.name for w in lifted_of(next(r for r in results if r.graph == "scale_01"))]
    io = {t.name: True for t in g.inputs} | {t.name: False for t in g.outputs} | {n: True for n in weights}
    match_engine_io(g, io, "scale_01.plan", weights)
    with pytest.raises(EngineError, match="unexpected"):
        match_engine_io(g, io, "scale_01.plan")  # a shared plan against a sidecar that lists no weights
    with pytest.raises(EngineError, match="lie outside weights.bin"):
        check_in_file([WeightInput("w", 10, 100, 1, (25,))], 64, "scale_01.plan")
