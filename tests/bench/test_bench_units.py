"""bench without a model: configurations, interleaving, statistics, ratio mapping, targets, report text."""
import json
import re

import pytest

from nova_deploy.bench import run as run_module
from nova_deploy.bench.configs import (NOVA_FIXED, REFERENCE, TORCH_COMPILE, Config, build_configs, parse_batches,
                                       parse_policies, parse_runners, split_list)
from nova_deploy.bench.nova_ratios import NovaRatios, map_from_end
from nova_deploy.bench.report import to_json, to_markdown
from nova_deploy.bench.run import BenchOptions, BenchResult, ConfigResult, open_runners, summarise
from nova_deploy.bench.runners import Runner, Sample
from nova_deploy.bench.schedule import interleaved
from nova_deploy.bench.stats import ratio, stat
from nova_deploy.bench.targets import evaluate_targets
from nova_deploy.errors import BackendUnavailable, InvalidArgument
from nova_deploy.nova.policy import Policy

MACHINE = {"cpu": "TestCPU", "logical_cores": 2, "usable_cores": 2, "memory_gib": 8, "gpu": None, "os": "linux",
           "python": "3", "torch": "t", "torch_threads": 2, "onnxruntime": "o"}


def test_interleaved_runs_every_configuration_once_per_round_rotating_the_start():
    steps = interleaved(["a", "b", "c"], warmup=2, repeat=4)
    warm, timed = [s for s in steps if not s.timed], [s for s in steps if s.timed]
    assert [s.config for s in warm] == ["a", "b", "c"] * 2
    assert steps[:6] == warm  # all warm-up before any timed run
    order = [s.config for s in timed]
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    for r in range(4):
        assert sorted(order[3 * r:3 * r + 3]) == ["a", "b", "c"]
        assert {s.round for s in timed[3 * r:3 * r + 3]} == {r}


@pytest.mark.parametrize("warmup, repeat, message", [(-1, 1, "--warmup"), (0, 0, "--repeat")])
def test_interleaved_refuses_bad_counts(warmup, repeat, message):
    with pytest.raises(InvalidArgument, match=message):
        interleaved(["a"], warmup, repeat)


def test_stat_and_ratio():
    s = stat([3.0, 1.0, 10.0, 2.0])
    assert (s.median, s.min, s.max, s.n) == (2.5, 1.0, 10.0, 4)
    assert ratio(6.0, 2.0) == 3.0 and ratio(1.0, 0.0) is None and ratio(None, 1.0) is None


def test_lists_parse_commas_and_keep_fixed_ratios_whole():
    assert split_list(["none,nova", "fixed:0,0,0.2,0.4", "fastvar"]) == ["none", "nova", "fixed:0,0,0.2,0.4", "fastvar"]
    assert split_list(["none,nova:base_ratio=0.2,r_max=0.5,fastvar:ratios=0.4/0.5,fixed:0,0.3"]) == [
        "none", "nova:base_ratio=0.2,r_max=0.5", "fastvar:ratios=0.4/0.5", "fixed:0,0.3"]
    assert parse_policies(["none,fixed:0,0.5," + NOVA_FIXED]) == ["none", "fixed:0,0.5", NOVA_FIXED]
    assert parse_runners(["torch,onnxruntime-prepack"]) == ["torch", "onnxruntime-prepack"]
    assert parse_batches(["8,1", "8"], max_batch=8) == [1, 8]


@pytest.mark.parametrize("call, message", [
    (lambda: parse_runners(["torch,cuda-magic"]), "unknown backend 'cuda-magic'; valid: torch, torch-bf16-decoder, torch-bf16, onnxruntime"),
    (lambda: parse_runners([REFERENCE]), "added by --reference"),
    (lambda: parse_policies(["nova,turbo"]), "unknown policy 'turbo'"),
    (lambda: parse_policies(["fixed:half"]), "comma-separated numbers"),
    (lambda: parse_policies(["nova:xyz"]), "policy nova: 'xyz' is not FIELD=VALUE with FIELD one of "
                                           "min_activation_scale, fallback_activation_scale, base_ratio, "
                                           "growth_per_scale, entropy_gain, r_max, layer_spread, "
                                           "protect_first_layers, upsample_mode, importance; valid: none, "
                                           "nova[:FIELD=VALUE,...], nova-summary[:FIELD=VALUE,...], fastvar[:FIELD=VALUE,...], "
                                           "fixed:R0,R1,..., " + NOVA_FIXED),
    (lambda: parse_batches(["1,9"], max_batch=8), "--batch 9: this export takes 1..8"),
    (lambda: parse_batches(["two"], max_batch=8), "--batch takes integers"),
])
def test_bad_lists_are_refused_naming_the_valid_values(call, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        call()


def test_reference_runs_dense_only_once_per_batch():
    configs = build_configs(["torch", "onnxruntime"], ["none", "nova"], [1, 8], reference=True)
    assert len(configs) == 2 * 2 * 2 + 2
    assert [c for c in configs if c.is_reference] == [Config(REFERENCE, "none", 1), Config(REFERENCE, "none", 8)]


def test_map_from_end_aligns_the_last_scales():
    ref = [0, 0, 0, 0, 0, 0.3, 0.4]
    assert map_from_end(ref, 10) == [0, 0, 0, 0, 0, 0, 0, 0, 0.3, 0.4]
    assert map_from_end([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], 10)[3:] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert map_from_end(ref, 3) == [0, 0.3, 0.4]
    r = NovaRatios("nova-ref", ref, map_from_end(ref, 10), 20, 1.3)
    assert r.fixed == "fixed:0,0,0,0,0,0,0,0,0.3,0.4" and not r.same_schedule and "from the end" in r.mapping
    assert NovaRatios("nova-ref", ref, map_from_end(ref, 7), 20, 1.3).same_schedule


def test_reference_model_for_takes_the_bundled_model_on_the_same_schedule(monkeypatch):
    from nova_deploy import model_source
    from nova_deploy.bench.nova_ratios import reference_model_for
    from nova_deploy.models.presets import PATCH_NUMS_256, REF_PATCH_NUMS

    monkeypatch.setattr(model_source.BundledModel, "available", lambda self: True)
    assert reference_model_for(PATCH_NUMS_256) == "nova-ref-16"
    assert reference_model_for(REF_PATCH_NUMS) == "nova-ref"
    assert reference_model_for((1, 2, 3)) == "nova-ref"  # no model on that schedule: the default, mapped
    monkeypatch.setattr(model_source.BundledModel, "available", lambda self: self.name == "nova-ref")
    assert reference_model_for(PATCH_NUMS_256) == "nova-ref"


# ---------------------------------------------------------------- a synthetic result
def _sample(wall, transformer, decoder, outside, flops_pruned=100):
    return Sample(wall_s=wall, transformer_s=transformer, decoder_s=decoder, outside_s=outside,
                  per_scale_s=[transformer / 2, transformer / 2], flops_dense=100, flops_pruned=flops_pruned)


def _result():
    """Per batch: torch dense 4 s, onnxruntime dense 2 s (2x), onnxruntime nova transformer 0.5 s
    vs 1.2 s dense at FLOP reduction 2.5 (b8), outside 0.04 of 2 s; reference 9 s at b1."""
    opt = BenchOptions(runners=["torch", "onnxruntime"], policies=["none", "nova"], batches=[1, 8], repeat=3)
    res = []
    for b in (1, 8):
        res += [ConfigResult(Config("torch", "none", b), "none", [_sample(4.0 * b, 3.0, 0.5, 0.5)] * 3),
                ConfigResult(Config("torch", "nova", b), "nova", [_sample(3.0 * b, 2.0, 0.5, 0.5, 40)] * 3),
                ConfigResult(Config("onnxruntime", "none", b), "none",
                             [_sample(2.0 * b, 1.2, 0.3, 0.04 * b), _sample(2.5 * b, 1.3, 0.3, 0.5 * b),
                              _sample(1.9 * b, 1.2, 0.3, 0.04 * b)]),
                ConfigResult(Config("onnxruntime", "nova", b), "nova", [_sample(1.0 * b, 0.5, 0.3, 0.2 * b, 40)] * 3),
                ConfigResult(Config(REFERENCE, "none", b), "none", [_sample(9.0 * b, 7.0, 1.0, 1.0)] * 3)]
    summarise(res)
    return BenchResult(options=opt, export_dir="engines/x", model="test model", is_reference_model=False,
                       num_scales=2, order=[r.config.label for r in res] * 3, results=res)


def test_summary_speedups_are_over_the_same_runners_dense_config():
    result = _result()
    ort_dense, ort_nova = result.find("onnxruntime", "none", 8), result.find("onnxruntime", "nova", 8)
    assert ort_dense.stats["wall_s"].median == 16.0 and ort_dense.stats["wall_s"].min == 1.9 * 8
    assert ort_dense.s_per_image == 2.0 and ort_dense.images_per_s == 0.5
    assert ort_nova.flop_reduction == 2.5
    assert ort_nova.speedup_e2e == 2.0 and ort_nova.speedup_transformer == pytest.approx(1.2 / 0.5)
    assert ort_nova.realised_over_flop == pytest.approx(2.4 / 2.5)
    assert result.find("torch", "nova", 8).speedup_e2e == pytest.approx(4 / 3)


def test_large_model_targets_pass_and_miss_from_the_measured_ratios():
    targets = {t.name: t for t in evaluate_targets(_result())}
    t = targets["NOVA (nova) on the deployed path (fastest backend) >= 2.5x the official algorithm, end to end, batch 1"]
    assert t.measured == 9.0 and t.status == "PASS" and "onnxruntime nova b1" in t.detail
    t = targets["dense on the deployed path (fastest backend) >= 1.5x the official algorithm, end to end, batch 1"]
    assert t.measured == 4.5 and t.status == "PASS"
    t = targets["NOVA realised transformer speedup / FLOP reduction >= 0.9, onnxruntime, batch 1"]
    assert t.measured == pytest.approx(2.4 / 2.5) and t.status == "PASS"
    t = targets["NOVA realised transformer speedup / FLOP reduction >= 0.9, torch, batch 1"]
    assert t.measured == pytest.approx(0.6) and t.status == "MISS" and t.limit
    assert targets["NOVA realised transformer speedup / FLOP reduction >= 0.9, torch, batch 4"].status == "NOT MEASURED"
    t = targets["time outside graph calls <= 2%, onnxruntime none b1"]
    assert t.measured == pytest.approx(0.04 / 1.9) and t.status == "MISS"  # median of 0.02, 0.2, 0.021
    assert targets["resident memory <= 1.3x the weight bytes, onnxruntime none b1"].status == "NOT MEASURED"


def test_an_end_to_end_target_met_by_a_runner_that_changes_tokens_says_so():
    result = _result()
    fast = ConfigResult(Config("torch-bf16", "none", 1), "none", [_sample(1.0, 0.6, 0.3, 0.1)] * 3)
    result.results.append(fast)
    summarise(result.results)
    targets = {t.name: t for t in evaluate_targets(result)}
    t = targets["dense on the deployed path (fastest backend) >= 1.5x the official algorithm, end to end, batch 1"]
    assert t.measured == 9.0 and "torch-bf16 none b1" in t.detail and "other tokens" in t.detail
    t = targets["NOVA (nova) on the deployed path (fastest backend) >= 2.5x the official algorithm, end to end, batch 1"]
    assert "other tokens" not in t.detail  # its fastest runner is fp32 onnxruntime


def test_memory_target_compares_rss_growth_with_the_exports_weight_bytes():
    from nova_deploy.bench.memory import Memory

    result = _result()
    result.weight_bytes = 100 * 2 ** 20
    result.find("onnxruntime", "none", 1).memory = Memory(peak_rss_mb=400.0, baseline_rss_mb=280.0, growth_mb=120.0)
    result.find("torch", "none", 1).memory = Memory(peak_rss_mb=500.0, baseline_rss_mb=280.0, growth_mb=220.0)
    targets = {t.name: t for t in evaluate_targets(result)}
    assert targets["resident memory <= 1.3x the weight bytes, onnxruntime none b1"].measured == pytest.approx(1.2)
    assert targets["resident memory <= 1.3x the weight bytes, onnxruntime none b1"].status == "PASS"
    assert targets["resident memory <= 1.3x the weight bytes, torch none b1"].status == "MISS"


def test_reference_model_targets_are_the_orchestrations():
    result = _result()
    result.is_reference_model = True
    targets = {t.name: t for t in evaluate_targets(result)}
    assert not any("official algorithm" in n or "resident memory" in n for n in targets)
    t = targets["time outside graph calls <= 5%, onnxruntime none b1"]
    assert t.measured == pytest.approx(0.04 / 1.9) and t.status == "PASS"
    assert targets["time outside graph calls <= 5%, onnxruntime nova b1"].status == "MISS"
    t = targets["NOVA's transformer phase no slower than dense, torch, batch 1"]
    assert t.measured == pytest.approx(1.5) and t.status == "PASS"


def test_targets_without_their_configurations_are_reported_not_measured():
    result = _result()
    result.options.policies = ["none"]
    result.results = [r for r in result.results if r.config.policy == "none" and r.config.runner != "torch"]
    statuses = {t.name: t.status for t in evaluate_targets(result)}
    assert statuses["NOVA on the deployed path (fastest backend) >= 2.5x the official algorithm, end to end, "
                    "batch 1"] == "NOT MEASURED"
    assert all(s == "NOT MEASURED" for n, s in statuses.items() if "realised" in n)


def test_report_holds_the_command_machine_tables_and_targets():
    result = _result()
    targets = evaluate_targets(result)
    md = to_markdown(result, targets, "nova-deploy bench --engines engines/x", MACHINE, "x", note="shared machine")
    assert "nova-deploy bench --engines engines/x" in md and "TestCPU" in md and "> shared machine" in md
    assert "| onnxruntime nova b8 | 1.00 | 1.000 | 1.000 |" in md
    assert "| MISS | NOVA realised transformer speedup / FLOP reduction >= 0.9, torch, batch 1 | 0.600 |" in md
    assert "Not measured: quality metrics need the bundled reference model" in md
    data = json.loads(json.dumps(to_json(result, targets, "cmd", MACHINE)))
    assert data["command"] == "cmd" and data["machine"]["cpu"] == "TestCPU"
    conf = {c["label"]: c for c in data["configurations"]}
    assert conf["onnxruntime nova b8"]["flop_reduction"] == 2.5
    assert conf["onnxruntime none b8"]["per_run_wall_s"] == [16.0, 20.0, 15.2]
    assert {t["status"] for t in data["targets"]} == {"PASS", "MISS", "NOT MEASURED"}


# ---------------------------------------------------------------- peers: torch-compile, runners that cannot run
def test_torch_compile_is_chosen_like_a_backend_and_runs_every_policy():
    assert parse_runners(["onnxruntime,torch-compile"]) == ["onnxruntime", TORCH_COMPILE]
    with pytest.raises(InvalidArgument, match="valid: torch, torch-bf16-decoder, torch-bf16, onnxruntime, onnxruntime-prepack, tensorrt, torch-compile"):
        parse_runners(["torch-compiled"])
    configs = build_configs([TORCH_COMPILE], ["none", "nova"], [1], reference=True)
    assert configs == [Config(TORCH_COMPILE, "none", 1), Config(TORCH_COMPILE, "nova", 1), Config(REFERENCE, "none", 1)]


def _peer_result():
    """b1: reference 9 s, torch-compile dense 6 s and nova 4 s, onnxruntime dense 3 s and nova 2 s."""
    walls = {(REFERENCE, "none"): 9.0, (TORCH_COMPILE, "none"): 6.0, (TORCH_COMPILE, "nova"): 4.0,
             ("onnxruntime", "none"): 3.0, ("onnxruntime", "nova"): 2.0}
    res = [ConfigResult(Config(r, p, 1), p, [_sample(w, w / 2, w / 4, w / 4)] * 2) for (r, p), w in walls.items()]
    summarise(res)
    opt = BenchOptions(runners=["onnxruntime", TORCH_COMPILE], policies=["none", "nova"], batches=[1], repeat=2)
    return BenchResult(options=opt, export_dir="engines/x", model="test model", is_reference_model=False,
                       num_scales=2, order=[r.config.label for r in res] * 2, results=res,
                       skipped={"tensorrt": "the tensorrt backend runs on a CUDA GPU, not on device cpu"},
                       compile={TORCH_COMPILE: {"backend": "inductor", "mode": "default", "options": {},
                                                "compile_s": 12.5, "graphs": 5, "graphs_in_timed_runs": 0}})


def test_every_configuration_is_compared_with_both_peers_at_its_batch_and_policy():
    result = _peer_result()
    ort_nova, ort_dense = result.find("onnxruntime", "nova", 1), result.find("onnxruntime", "none", 1)
    assert ort_nova.vs_reference == 4.5 and ort_nova.vs_torch_compile == 2.0  # 9/2; torch-compile nova 4/2
    assert ort_dense.vs_reference == 3.0 and ort_dense.vs_torch_compile == 2.0  # 9/3; 6/3
    tc_nova = result.find(TORCH_COMPILE, "nova", 1)
    assert tc_nova.vs_reference == 9.0 / 4.0 and tc_nova.vs_torch_compile is None  # not against itself
    assert result.find(REFERENCE, "none", 1).vs_reference is None
    md = to_markdown(result, evaluate_targets(result), "cmd", MACHINE, "x")
    header = next(line for line in md.splitlines() if line.startswith("| configuration | img/s"))
    assert "| x reference | x torch-compile |" in header
    row = next(line for line in md.splitlines() if line.startswith("| onnxruntime nova b1 |"))
    assert "| 4.50x | 2.00x |" in row
    assert "**tensorrt did not run here**: the tensorrt backend runs on a CUDA GPU" in md
    assert "torch-compile: 5 graphs compiled in 12.5 s before the warm-up" in md
    data = json.loads(json.dumps(to_json(result, [], "cmd", MACHINE)))
    conf = {c["label"]: c for c in data["configurations"]}
    assert conf["onnxruntime nova b1"]["speedup_e2e_vs_reference"] == 4.5
    assert conf["onnxruntime nova b1"]["speedup_e2e_vs_torch_compile"] == 2.0
    assert data["skipped_runners"] == result.skipped and data["compile"][TORCH_COMPILE]["graphs"] == 5


class _FakeRunner(Runner):
    def __init__(self, name, fail_in_prepare=False):
        self.name, self.fail_in_prepare, self.closed, self.jobs = name, fail_in_prepare, False, None

    def prepare(self, jobs, seed, params):
        if self.fail_in_prepare:
            raise BackendUnavailable(f"runner {self.name}: torch.compile failed:\n  a second line")
        self.jobs = jobs

    def close(self):
        self.closed = True


def test_a_runner_that_cannot_run_is_named_in_one_line_and_the_others_run(monkeypatch):
    opened = {}

    def fake_open(name, export, device, threads):
        if name == "tensorrt":
            raise BackendUnavailable("the tensorrt backend runs on a CUDA GPU, not on device cpu")
        opened[name] = _FakeRunner(name, fail_in_prepare=name == TORCH_COMPILE)
        return opened[name]

    monkeypatch.setattr(run_module, "open_runner", fake_open)
    configs = build_configs(["tensorrt", "onnxruntime", TORCH_COMPILE], ["none"], [1, 2], reference=False)
    opt = BenchOptions(runners=["tensorrt", "onnxruntime", TORCH_COMPILE], policies=["none"], batches=[1, 2])
    lines = []
    runners, skipped = open_runners(configs, None, opt, {"none": Policy()}, lines.append)
    assert list(runners) == ["onnxruntime"] and runners["onnxruntime"].jobs == [(1, Policy()), (2, Policy())]
    assert skipped == {"tensorrt": "the tensorrt backend runs on a CUDA GPU, not on device cpu",
                       TORCH_COMPILE: "runner torch-compile: torch.compile failed: a second line"}
    assert opened[TORCH_COMPILE].closed  # opened, then failed: closed, not left half-open
    assert [ln for ln in lines if ln.startswith("skipped")] == [
        "skipped runner tensorrt: the tensorrt backend runs on a CUDA GPU, not on device cpu",
        "skipped runner torch-compile: runner torch-compile: torch.compile failed: a second line"]
    with pytest.raises(BackendUnavailable, match="no runner can run here: tensorrt: the tensorrt backend runs"):
        open_runners(build_configs(["tensorrt"], ["none"], [1], False), None, opt, {"none": Policy()}, lines.append)


def test_the_peer_gets_no_target_of_the_deployed_path():
    result = _peer_result()
    result.is_reference_model = True
    names = [t.name for t in evaluate_targets(result)]
    assert "NOVA's transformer phase no slower than dense, onnxruntime, batch 1" in names
    assert not any(TORCH_COMPILE in n for n in names)
