"""Library calls leave process-wide settings as the caller had them: torch's thread count and
matplotlib's backend (a program that embeds nova-deploy keeps its own choices)."""
import json
from types import SimpleNamespace

import matplotlib
import pytest
import torch

from nova_deploy.threads import torch_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_torch_threads_restores_the_count_even_when_the_block_changes_it_and_fails(restore_threads):
    torch.set_num_threads(1)
    with pytest.raises(RuntimeError):
        with torch_threads(3):
            assert torch.get_num_threads() == 3
            torch.set_num_threads(2)
            raise RuntimeError("stop")
    assert torch.get_num_threads() == 1
    with torch_threads():  # None: runs on the current count, still gives it back
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
    assert torch.get_num_threads() == 1


def test_run_bench_runs_on_its_threads_and_gives_the_callers_back(restore_threads, monkeypatch):
    from nova_deploy.bench import run

    seen = []

    def fake_run(export_dir, opt, log):
        seen.append(torch.get_num_threads())
        torch.set_num_threads(2)  # as a runner might
        return "result"

    monkeypatch.setattr(run, "_run_bench", fake_run)
    torch.set_num_threads(1)
    assert run.run_bench("x", SimpleNamespace(threads=3)) == "result"
    assert run.run_bench("x", SimpleNamespace(threads=None)) == "result"
    assert seen == [3, 1] and torch.get_num_threads() == 1


def test_train_var_gives_back_the_threads_its_steps_ran_on(restore_threads, tmp_path):
    from nova_deploy.models.build import build_vqvae
    from nova_deploy.models.presets import get_preset
    from nova_deploy.train.var import train_var

    preset = get_preset("tiny")
    gen = torch.Generator().manual_seed(0)
    n_tokens = sum(p * p for p in preset.var.patch_nums)
    tokens = tmp_path / "tokens.pt"
    torch.save({"tokens": torch.randint(0, preset.vae.vocab_size, (16, n_tokens), generator=gen).to(torch.int16),
                "labels": torch.randint(0, preset.var.num_classes, (16,), generator=gen)}, tokens)
    torch.set_num_threads(1)
    train_var(preset.var, build_vqvae(preset.vae), tokens, tmp_path, seed=0, steps=2, batch=4,
              threads_at_step=lambda step: 2)
    rows = [json.loads(line) for line in (tmp_path / "var_log.jsonl").read_text().splitlines()]
    assert [row["threads"] for row in rows] == [2]  # logged every 10 steps: step 0 ran on 2
    assert torch.get_num_threads() == 1


# ---------------------------------------------------------------- matplotlib
@pytest.fixture
def svg_backend():
    """A backend other than the Agg the plots render with, as an embedding program might have chosen."""
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield "svg"
    matplotlib.use(before)


def test_trace_plot_leaves_the_backend_as_it_was(svg_backend, tmp_path):
    from nova_deploy.nova.plot import plot_trace

    trace = [{"entropy_curve": [0.9, 0.7, 0.5], "activation_scale": 1, "scale_ratio": [0, 0.3, 0.4], "policy": "nova"}]
    path = plot_trace(trace, tmp_path / "t.png")
    assert path.read_bytes().startswith(b"\x89PNG") and matplotlib.get_backend() == svg_backend


def test_eval_plot_leaves_the_backend_as_it_was(svg_backend, tmp_path):
    from nova_deploy.eval.report import eval_png

    reports = [SimpleNamespace(entropy_per_scale=[0.9, 0.6], policy="none")]
    path = eval_png(torch.rand(10, 3, 8, 8), reports, tmp_path / "e.png")
    assert path.read_bytes().startswith(b"\x89PNG") and matplotlib.get_backend() == svg_backend


def test_bench_plots_leave_the_backend_as_it_was(svg_backend, tmp_path):
    from nova_deploy.bench.configs import Config
    from nova_deploy.bench.quality import Quality
    from nova_deploy.bench.report import quality_png, speed_png
    from nova_deploy.bench.run import BenchOptions, BenchResult, ConfigResult, summarise
    from nova_deploy.bench.runners import Sample

    sample = Sample(wall_s=2.0, transformer_s=1.0, decoder_s=0.5, outside_s=0.1, per_scale_s=[0.5, 0.5],
                    flops_dense=100, flops_pruned=50)
    results = [ConfigResult(Config("onnxruntime", p, 1), p, [sample] * 2) for p in ("none", "nova")]
    summarise(results)
    quality = {p: Quality(policy=p, runner="onnxruntime", samples=2, classifier_accuracy=1.0, flop_reduction=1.0,
                          psnr_vs_dense=30.0) for p in ("none", "nova")}
    result = BenchResult(options=BenchOptions(runners=["onnxruntime"], policies=["none", "nova"], batches=[1]),
                         export_dir="x", model="m", is_reference_model=True, num_scales=2, order=[],
                         results=results, quality=quality)
    speed_png(result, tmp_path / "s.png")
    quality_png(result, tmp_path / "q.png")
    assert (tmp_path / "s.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "q.png").read_bytes().startswith(b"\x89PNG")
    assert matplotlib.get_backend() == svg_backend
