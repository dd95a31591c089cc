"""bench without a model: configurations, interleaving, statistics, ratio mapping, targets, report text."""
import json

import pytest

from nova_deploy.bench.configs import (NOVA_FIXED, REFERENCE, Config, build_configs, parse_batches, parse_policies,
                                       parse_runners, split_list)
from nova_deploy.bench.nova_ratios import NovaRatios, map_from_end
from nova_deploy.bench.report import to_json, to_markdown
from nova_deploy.bench.run import BenchOptions, BenchResult, ConfigResult, summarise
from nova_deploy.bench.runners import Sample
from nova_deploy.bench.schedule import interleaved
from nova_deploy.bench.stats import ratio, stat
from nova_deploy.bench.targets import evaluate_targets
from nova_deploy.errors import InvalidArgument

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
    assert parse_policies(["none,fixed:0,0.5," + NOVA_FIXED]) == ["none", "fixed:0,0.5", NOVA_FIXED]
    assert parse_runners(["torch,onnxruntime-prepack"]) == ["torch", "onnxruntime-prepack"]
    assert parse_batches(["8,1", "8"], max_batch=8) == [1, 8]


@pytest.mark.parametrize("call, message", [
    (lambda: parse_runners(["torch,cuda-magic"]), "unknown backend 'cuda-magic'; valid: torch, onnxruntime"),
    (lambda: parse_runners([REFERENCE]), "added by --reference"),
    (lambda: parse_policies(["nova,turbo"]), "unknown policy 'turbo'"),
    (lambda: parse_policies(["fixed:half"]), "comma-separated numbers"),
    (lambda: parse_policies(["nova:xyz"]), "policy nova takes no argument, got nova:xyz; valid: none, nova, fastvar, "
                                           "fixed:R0,R1,..., " + NOVA_FIXED),
    (lambda: parse_batches(["1,9"], max_batch=8), "--batch 9: this export takes 1..8"),
    (lambda: parse_batches(["two"], max_batch=8), "--batch takes integers"),
])
def test_bad_lists_are_refused_naming_the_valid_values(call, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(".", r"\.")):
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
    r = NovaRatios(ref, map_from_end(ref, 10), 20, 1.3)
    assert r.fixed == "fixed:0,0,0,0,0,0,0,0,0.3,0.4"


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


def test_targets_pass_and_miss_from_the_measured_ratios():
    targets = {t.name: t for t in evaluate_targets(_result())}
    t = targets["ONNX Runtime dense >= 1.8x PyTorch eager dense, end to end, batch 8"]
    assert t.measured == 2.0 and t.status == "PASS"
    t = targets["NOVA transformer phase >= 2.0x dense, onnxruntime, batch 8"]
    assert t.measured == pytest.approx(2.4) and t.status == "PASS"
    t = targets["NOVA transformer phase >= 2.0x dense, torch, batch 8"]
    assert t.measured == pytest.approx(1.5) and t.status == "MISS"
    assert targets["NOVA realised speedup / FLOP reduction >= 0.85, onnxruntime, batch 8"].status == "PASS"
    assert targets["NOVA realised speedup / FLOP reduction >= 0.85, torch, batch 8"].measured == pytest.approx(0.6)
    t = targets["NOVA on ONNX Runtime >= 3x the PyTorch reference sampler (dense), end to end, batch 1"]
    assert t.measured == 9.0 and t.status == "PASS"
    t = targets["time outside backend calls <= 5% on ONNX Runtime, none batch 1"]
    assert t.measured == pytest.approx(0.04 / 1.9) and t.status == "PASS"  # median of 0.02, 0.2, 0.021
    t = targets["time outside backend calls <= 5% on ONNX Runtime, nova batch 8"]
    assert t.measured == pytest.approx(0.2) and t.status == "MISS" and t.limit


def test_targets_without_their_configurations_are_reported_not_measured():
    result = _result()
    result.options.policies = ["none"]
    result.results = [r for r in result.results if r.config.policy == "none" and r.config.runner != "torch"]
    statuses = {t.name: t.status for t in evaluate_targets(result)}
    assert statuses["ONNX Runtime dense >= 1.8x PyTorch eager dense, end to end, batch 1"] == "NOT MEASURED"
    assert all(s == "NOT MEASURED" for n, s in statuses.items() if "transformer phase" in n)


def test_report_holds_the_command_machine_tables_and_targets():
    result = _result()
    targets = evaluate_targets(result)
    md = to_markdown(result, targets, "nova-deploy bench --engines engines/x", MACHINE, "x", note="shared machine")
    assert "nova-deploy bench --engines engines/x" in md and "TestCPU" in md and "> shared machine" in md
    assert "| onnxruntime nova b8 | 1.00 | 1.000 | 1.000 |" in md
    assert "| MISS | NOVA transformer phase >= 2.0x dense, torch, batch 8 | 1.500 |" in md
    assert "Not measured: quality metrics need the bundled reference model" in md
    data = json.loads(json.dumps(to_json(result, targets, "cmd", MACHINE)))
    assert data["command"] == "cmd" and data["machine"]["cpu"] == "TestCPU"
    conf = {c["label"]: c for c in data["configurations"]}
    assert conf["onnxruntime nova b8"]["flop_reduction"] == 2.5
    assert conf["onnxruntime none b8"]["per_run_wall_s"] == [16.0, 20.0, 15.2]
    assert {t["status"] for t in data["targets"]} == {"PASS", "MISS"}
