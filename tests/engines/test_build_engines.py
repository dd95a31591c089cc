"""Real TensorRT-RTX builds of the default model's graphs: plans, sidecars, the engine cache,
atomic writes and the errors of bad input."""
import json

import onnx
import pytest

from cli_runner import run_cli
from conftest import GRAPHS, TARGET
from nova_deploy.artifacts.hashing import file_size, sha256_file
from nova_deploy.artifacts.manifest import read_manifest, write_manifest
from nova_deploy.engines.build_dir import build_engines
from nova_deploy.engines.cache_key import BuildOptions, engine_key
from nova_deploy.engines.errors import EngineError
from nova_deploy.engines.profiles import profile_to_json
from nova_deploy.engines.store import load_plan, sidecar_path
from nova_deploy.engines.targets import parse_targets
from nova_deploy.engines.weight_inputs import WeightInput, weight_profile
from nova_deploy.errors import InvalidArgument
from nova_deploy.export.manifest import spec_from_manifest


def build(rtx, path, **options):
    graphs = options.pop("graphs", GRAPHS)
    return {r.graph: r for r in build_engines(path, rtx, parse_targets(rtx, [TARGET]), BuildOptions(**options),
                                              graphs=graphs)}


def test_first_build_writes_plan_and_sidecar_per_graph(built, rtx):
    path, results = built
    spec = spec_from_manifest(read_manifest(path))
    assert [r.graph for r in results] == list(GRAPHS) and all(r.built for r in results)
    for r in results:
        assert r.plan == path / "engines" / "tensorrt-rtx-sm89" / f"{r.graph}.plan"
        assert r.plan_bytes == r.plan.stat().st_size > 1_000_000  # kernels, and the weights it does not share
        side = json.loads(sidecar_path(r.plan).read_text())
        lifted = [WeightInput.from_json(w) for w in side["weight_inputs"]]
        assert side["key"] == engine_key(side["fields"])
        assert side["fields"]["library_version"] == rtx.version and side["fields"]["target"] == "sm89"
        assert side["fields"]["onnx_sha256"] == sha256_file(path / f"{r.graph}.onnx")
        assert side["profile"] == profile_to_json({**spec.graph(r.graph).profile(), **weight_profile(lifted)})
        assert side["network"]["layers"] > 10 and side["network"]["by_output_dtype"].get("FLOAT", 0) > 0
        assert load_plan(r.plan, side["fields"]) == r.plan.read_bytes()


def test_second_build_is_a_no_op(built, rtx):
    path, first = built
    stamps = {r.graph: r.plan.stat().st_mtime_ns for r in first}
    again = build(rtx, path)
    assert not any(r.built for r in again.values()) and {r.reason for r in again.values()} == {"cached"}
    assert {g: r.plan.stat().st_mtime_ns for g, r in again.items()} == stamps


def test_opt_level_and_max_batch_rebuild_only_what_changed(built_copy, rtx):
    r = build(rtx, built_copy, graphs=["decoder"], opt_level=1)["decoder"]
    assert r.built and "options" in r.reason
    r = build(rtx, built_copy, graphs=["decoder"], opt_level=1, max_batch=2)["decoder"]
    assert r.built and "profile" in r.reason
    side = json.loads(sidecar_path(r.plan).read_text())
    assert side["profile"]["f_hat_BChw"]["max"][0] == 2 and side["fields"]["options"]["max_batch"] == 2
    assert not build(rtx, built_copy, graphs=["decoder"], opt_level=1, max_batch=2)["decoder"].built


def test_changed_graph_rebuilds(built_copy, rtx):
    """A re-exported graph (new bytes, new manifest hash) makes its plan stale."""
    model = onnx.load(str(built_copy / "decoder.onnx"), load_external_data=False)
    model.doc_string = "re-exported"
    onnx.save(model, str(built_copy / "decoder.onnx"))
    manifest = read_manifest(built_copy)
    manifest["files"]["decoder.onnx"] = {"sha256": sha256_file(built_copy / "decoder.onnx"),
                                         "bytes": file_size(built_copy / "decoder.onnx")}
    write_manifest(built_copy, manifest)
    results = build(rtx, built_copy)
    assert results["decoder"].built and "onnx_sha256" in results["decoder"].reason
    assert not results["scale_01"].built


def test_graph_changed_behind_the_manifest_is_refused(built_copy, rtx):
    with open(built_copy / "decoder.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(EngineError, match="decoder.onnx: sha256 differs.*export again"):
        build(rtx, built_copy)


def test_partial_or_corrupt_plan_is_never_loaded_and_is_rebuilt(built_copy, rtx):
    plan = built_copy / "engines" / "tensorrt-rtx-sm89" / "decoder.plan"
    data = plan.read_bytes()
    plan.write_bytes(data[: len(data) // 2])
    with pytest.raises(EngineError, match="partial write"):
        load_plan(plan)
    plan.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(EngineError, match="corrupt or replaced"):
        load_plan(plan)
    r = build(rtx, built_copy, graphs=["decoder"])["decoder"]
    assert r.built and load_plan(plan) == plan.read_bytes()
    assert not list(plan.parent.glob(".*.tmp"))  # no temporary files left behind


def test_bad_max_batch_and_graph_name(built, rtx):
    path, _ = built
    with pytest.raises(InvalidArgument, match=r"--max-batch 9: this export accepts 1\.\.8 images"):
        build(rtx, path, max_batch=9)
    with pytest.raises(InvalidArgument, match="--graph scale_99: not in this export; valid: cond, scale_00"):
        build(rtx, path, graphs=["scale_99"])
    with pytest.raises(InvalidArgument, match="--opt-level 7"):
        BuildOptions(opt_level=7)


def test_cli_build_engines_and_inspect(built):
    path, _ = built
    res = run_cli("build-engines", path, "--library", "tensorrt-rtx", "--compute-capability", TARGET,
                  "--graph", "scale_01", "--graph", "decoder")
    assert res.exit_code == 0, res.output
    assert "0 built, 2 cached" in res.output
    res = run_cli("build-engines", path, "--library", "tensorrt-rtx", "--max-batch", 0)
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1].startswith("error: --max-batch 0")
    res = run_cli("inspect", path / "engines" / "tensorrt-rtx-sm89" / "scale_01.plan")
    assert res.exit_code == 0, res.output
    assert "(intact)" in res.output and "k_prefix_0" in res.output and "tensorrt-rtx" in res.output
    assert "deserializes plans only on a GPU" in res.output
    res = run_cli("inspect", path)
    assert res.exit_code == 0 and "scale_01" in res.output and "against weights.bin" in res.output
