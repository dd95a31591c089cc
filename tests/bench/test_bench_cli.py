"""`nova-deploy bench` end to end on the session's small export (max batch 2), and its one-line errors."""
import json
import resource

import pytest
import torch

from cli_runner import run_cli


pytestmark = pytest.mark.slow  # needs the session's small export


@pytest.fixture(scope="module")
def bench_run(small_export, tmp_path_factory):
    """One short run: onnxruntime and the reference sampler, dense and nova, batches 1 and 2, one
    memory probe (onnxruntime dense b2). This process first peaks above 1.5 GB, so a probe that
    reported its parent's peak (ru_maxrss across fork and exec) would show it."""
    big = torch.ones(400_000_000)  # 1.6 GB, freed at once
    del big
    parent_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = tmp_path_factory.mktemp("bench")
    r = run_cli("bench", "--engines", small_export.out_dir, "--backends", "onnxruntime", "--policies", "none,nova",
            "--batch", "1", "--batch", "2", "--repeat", "2", "--warmup", "0", "--threads", "1",
            "--memory", "dense", "--out", out, "--name", "small")
    assert r.exit_code == 0, r.output
    r2 = run_cli("bench", "--engines", small_export.out_dir, "--backends", "onnxruntime", "--policies", "none", "--batch", "2",
             "--repeat", "1", "--warmup", "0", "--threads", "1", "--memory", "off", "--no-reference", "--out", out,
             "--name", "small2")
    assert r2.exit_code == 0, r2.output
    return out, r.output, parent_peak_mb


def test_bench_writes_json_markdown_and_plot(bench_run, small_export):
    out, output, _ = bench_run
    data = json.loads((out / "small.json").read_text())
    labels = [c["label"] for c in data["configurations"]]
    assert sorted(labels) == sorted(["onnxruntime none b1", "onnxruntime nova b1", "onnxruntime none b2",
                                     "onnxruntime nova b2", "torch-reference none b1", "torch-reference none b2"])
    # interleaved: each round ran every configuration once, starting one later each round
    order = data["timed_order"]
    assert len(order) == 12 and sorted(order[:6]) == sorted(labels) and order[6:] == order[1:6] + order[:1]
    for c in data["configurations"]:
        assert c["stats"]["wall_s"]["n"] == 2 and len(c["per_run_wall_s"]) == 2
        assert len(c["per_scale_s"]) == len(small_export.manifest["scales"]["patch_nums"])
        assert c["stats"]["transformer_s"]["median"] + c["stats"]["decoder_s"]["median"] < c["stats"]["wall_s"]["median"]
    nova = next(c for c in data["configurations"] if c["label"] == "onnxruntime nova b2")
    assert nova["flop_reduction"] > 1.0 and nova["transformer_flops_per_image"]["pruned"] < \
        nova["transformer_flops_per_image"]["dense"]
    assert nova["speedup_e2e_vs_dense"] is not None and nova["memory"] is None  # --memory dense
    md = (out / "small.md").read_text()
    assert "nova-deploy bench --engines" in md and "--memory dense" in md and "## Targets" in md
    assert (out / "small-speed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "small-quality.png").exists() and data["quality"] == {}  # not the reference model
    assert "onnxruntime nova b2" in output and "targets" in output


def test_memory_probe_measures_its_own_process(bench_run):
    out, _, parent_peak_mb = bench_run
    data = json.loads((out / "small.json").read_text())
    mem = next(c for c in data["configurations"] if c["label"] == "onnxruntime none b2")["memory"]
    assert 0 < mem["baseline_rss_mb"] < mem["peak_rss_mb"] < parent_peak_mb - 1000
    assert mem["growth_mb"] == pytest.approx(mem["peak_rss_mb"] - mem["baseline_rss_mb"])


def test_targets_name_what_was_not_measured(bench_run):
    out, _, _ = bench_run
    targets = {t["name"]: t for t in json.loads((out / "small.json").read_text())["targets"]}
    t = targets["NOVA realised transformer speedup / FLOP reduction >= 0.9, torch, batch 1"]
    assert t["status"] == "NOT MEASURED" and t["measured"] is None  # no torch runner in this run
    t = targets["NOVA (nova) on the deployed path (fastest backend) >= 2.5x the official algorithm, end to end, batch 1"]
    assert t["status"] in ("PASS", "MISS") and t["measured"] > 0 and "onnxruntime nova b1" in t["detail"]
    t = targets["resident memory <= 1.3x the weight bytes, onnxruntime none b1"]
    assert t["status"] in ("PASS", "MISS") and t["measured"] > 0 and "MB of weights" in t["detail"]
    data2 = json.loads((out / "small2.json").read_text())
    assert [c["label"] for c in data2["configurations"]] == ["onnxruntime none b2"]


@pytest.mark.parametrize("args, message", [
    (("--backends", "onnxruntime,warp"), "error: unknown backend 'warp'; valid: torch, torch-bf16-decoder, torch-bf16, onnxruntime"),
    (("--policies", "none,turbo"), "error: unknown policy 'turbo'"),
    (("--policies", "fixed:0,0.5", "--batch", "1"), "error: policy fixed:0,0.5: scale_ratios has 2 entries"),
    (("--batch", "3"), "error: --batch 3: this export takes 1..2 images per call"),
    (("--repeat", "0"), "error: --repeat must be >= 1, got 0"),
])
def test_bad_input_is_one_line_and_exit_2(small_export, tmp_path, args, message):
    r = run_cli("bench", "--engines", small_export.out_dir, "--memory", "off", "--out", tmp_path, *args)
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines()[-1].startswith(message) and "Traceback" not in r.output
    assert list(tmp_path.iterdir()) == []  # nothing written
