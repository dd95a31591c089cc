"""The torch-compile peer on this module's own tiny export: the reference sampler's tokens and images,
every graph compiled before the timed runs; and without a C++ compiler it is named in one line
while the other runners run. torch.compile takes minutes on 2 cores: the runner is compiled once
for the module, on the smallest model that still has a scale NOVA prunes, and the export is the
module's own (not the session's small export), so that under pytest-xdist the module is a group of
its own and compiles on one worker while the small export's group runs on the other."""
import json

import pytest
import torch

from cli_runner import run_cli
from export_sources import one_thread  # noqa: F401  (autouse: the thread count the runner compiled for)
from nova_deploy.bench.compiled_runner import CompiledRunner
from nova_deploy.bench.configs import TORCH_COMPILE
from nova_deploy.bench.runners import ReferenceRunner
from nova_deploy.export.exporter import export_model
from nova_deploy.export.manifest import open_export
from nova_deploy.nova.policy import parse_policy
from nova_deploy.sampling import SamplingParams

pytestmark = pytest.mark.slow  # exports a model and compiles it

PARAMS = SamplingParams(cfg=1.5, top_k=0, top_p=0.0)
POLICIES = {"none": parse_policy("none"), "nova": parse_policy("nova")}
NO_COMPILER = ("/nonexistent/g++",)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """The `tiny` preset (depth 2, scales 1-4) with every VAR parameter random, so that NOVA prunes
    (scales 2 and 3 under the default prune range); max batch 1, the one batch the tests run.
    Inductor's compile time grows with the layers and scales it compiles: this is the cheapest
    model that still has dense scales, the dynamic later scales and pruned layers to compile."""
    from export_sources import randomised_checkpoint_source

    root = tmp_path_factory.mktemp("tiny_export")
    return export_model(randomised_checkpoint_source("tiny", root), root / "export", max_batch=1)


@pytest.fixture(scope="module")
def runners(tiny_export):
    # dynamo guards on the thread count: prepare compiles for the one thread the tests (one_thread)
    # and the bench CLI (--threads 1) run on, else the timed runs would compile again
    torch.set_num_threads(1)
    export = open_export(tiny_export.out_dir)
    compiled = CompiledRunner(export)
    compiled.prepare([(1, p) for p in POLICIES.values()], seed=0, params=PARAMS)
    reference = ReferenceRunner(export)
    yield compiled, reference
    compiled.close()
    reference.close()


@pytest.mark.parametrize("policy", list(POLICIES))
def test_compiled_runner_samples_the_reference_samplers_tokens(runners, policy):
    compiled, reference = runners
    c = compiled.run(1, POLICIES[policy], 0, PARAMS, keep_outputs=True)
    r = reference.run(1, POLICIES[policy], 0, PARAMS, keep_outputs=True)
    assert len(c.tokens) == len(r.tokens) == len(compiled.patch_nums)
    for si, (a, b) in enumerate(zip(c.tokens, r.tokens)):
        assert torch.equal(a, b), f"scale {si}"
    # inductor reorders and fuses fp32 arithmetic: the images differ in rounding only (measured ~1e-6)
    assert (c.images - r.images).abs().max().item() < 1e-4
    # the same breakdown as the reference sampler: every scale step and the decoder timed
    assert len(c.per_scale_s) == len(compiled.patch_nums) and all(t > 0 for t in c.per_scale_s)
    assert c.decoder_s > 0 and c.transformer_s + c.decoder_s < c.wall_s
    assert c.flops_dense == r.flops_dense and c.flops_pruned == r.flops_pruned
    if policy == "nova":  # pruned layers ran, so their graphs were compiled and compared too
        assert c.flops_pruned < c.flops_dense


def test_prepare_compiled_every_graph_the_timed_runs_use(runners):
    compiled, _ = runners
    for policy in POLICIES.values():
        compiled.run(1, policy, 0, PARAMS)
    info = compiled.compile_info()
    # scale 0 (no K/V prefix), the later scales (one dynamic graph), the decoder; NOVA's pruned layers more
    assert info["graphs"] >= 3 and info["compile_s"] > 0
    assert info["graphs_in_timed_runs"] == 0


def _bench(tiny_export, out, name, backends, *extra):
    return run_cli("bench", "--engines", tiny_export.out_dir, "--backends", backends, "--policies", "none",
                   "--batch", "1", "--repeat", "1", "--warmup", "0", "--threads", "1", "--memory", "off",
                   "--quality-samples", "0", "--out", out, "--name", name, *extra)


def test_bench_reports_the_deployed_path_against_both_peers(tiny_export, runners, tmp_path):
    # dynamo's in-process cache would hand the bench's runner the graphs `runners` compiled, so its
    # prepare would compile none: without it, the bench compiles its own, from inductor's FX graph
    # cache that `runners` filled (seconds, not minutes, at the same thread count)
    torch._dynamo.reset()
    r = _bench(tiny_export, tmp_path, "peers", f"onnxruntime,{TORCH_COMPILE}", "--reference")
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "peers.json").read_text())
    conf = {c["label"]: c for c in data["configurations"]}
    assert sorted(conf) == ["onnxruntime none b1", "torch-compile none b1", "torch-reference none b1"]
    wall = {k: c["stats"]["wall_s"]["median"] for k, c in conf.items()}
    ort = conf["onnxruntime none b1"]
    assert ort["speedup_e2e_vs_reference"] == pytest.approx(wall["torch-reference none b1"] / wall[ort["label"]])
    assert ort["speedup_e2e_vs_torch_compile"] == pytest.approx(wall["torch-compile none b1"] / wall[ort["label"]])
    # --warmup 0: the runner compiled before the timed round, which compiled nothing
    assert data["compile"][TORCH_COMPILE]["graphs"] >= 3
    assert data["compile"][TORCH_COMPILE]["graphs_in_timed_runs"] == 0
    assert "| x reference | x torch-compile |" in (tmp_path / "peers.md").read_text()


def test_without_a_compiler_torch_compile_is_named_in_one_line_and_the_rest_runs(tiny_export, tmp_path):
    import torch._inductor.config as inductor_config

    with inductor_config.patch({"cpp.cxx": NO_COMPILER}):  # inductor's own compiler search fails
        r = _bench(tiny_export, tmp_path, "nocxx", f"onnxruntime,{TORCH_COMPILE}", "--no-reference")
    assert r.exit_code == 0, r.output
    named = [line for line in r.output.splitlines() if TORCH_COMPILE in line and "skipped" in line]
    assert named == [f"skipped runner {TORCH_COMPILE}: runner {TORCH_COMPILE} needs a C++ compiler for inductor: "
                     f"No working C++ compiler found in torch._inductor.config.cpp.cxx: {NO_COMPILER} "
                     f"(install g++ or point CXX at a C++ compiler)"]
    data = json.loads((tmp_path / "nocxx.json").read_text())
    assert [c["label"] for c in data["configurations"]] == ["onnxruntime none b1"]
    assert "C++ compiler" in data["skipped_runners"][TORCH_COMPILE]
    assert f"**{TORCH_COMPILE} did not run here**" in (tmp_path / "nocxx.md").read_text()


def test_without_a_compiler_and_nothing_else_to_run_bench_fails_in_one_line(tiny_export, tmp_path):
    import torch._inductor.config as inductor_config

    with inductor_config.patch({"cpp.cxx": NO_COMPILER}):
        r = _bench(tiny_export, tmp_path, "none", TORCH_COMPILE, "--no-reference")
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines()[-1].startswith(
        f"error: no runner can run here: {TORCH_COMPILE}: runner {TORCH_COMPILE} needs a C++ compiler")
    assert "Traceback" not in r.output and list(tmp_path.iterdir()) == []  # nothing written
