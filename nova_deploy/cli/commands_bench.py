"""The bench command: speed, FLOPs, memory and quality of backends x policies x batch sizes."""
import os
import shlex
from pathlib import Path

import click

from nova_deploy.cli.options import DEVICE, SEED, THREADS, draw_option, model_options, threads_help
from nova_deploy.errors import InvalidArgument
from nova_deploy.nova.policy import valid_forms

DEFAULT_BACKENDS, DEFAULT_POLICIES, DEFAULT_BATCHES = "torch,onnxruntime", "none,nova,fastvar", ("1", "8")


@click.command("bench")
@click.option("--engines", "engines_dir", type=click.Path(file_okay=False), default=None,
              help="Export directory to benchmark. With --checkpoint/--vae or --preset: where to export the "
                   "model first (reused when it already holds that export). Default: engines/bench-<model>.")
@model_options
@click.option("--random-weights", is_flag=True,
              help="Required with --preset alone: benchmark that architecture with random weights (speed only).")
@click.option("--backends", "backends", multiple=True, default=(DEFAULT_BACKENDS,), show_default=True,
              help="Comma-separated or repeated: torch, onnxruntime (pre-packing off, one weights copy), "
                   "onnxruntime-prepack (pre-packing on), tensorrt (needs a GPU); and the peer torch-compile "
                   "(the reference sampler under torch.compile, needs a C++ compiler on a CPU; compiles before "
                   "the warm-up, minutes on 2 cores). A runner that cannot run here is named and skipped.")
@click.option("--policies", "policies", multiple=True, default=(DEFAULT_POLICIES,), show_default=True,
              help=f"Comma-separated or repeated: {valid_forms()}, fixed:nova-ref "
                   "(the ratios NOVA's default config chooses on the reference model).")
@click.option("--batch", "batches", multiple=True, default=DEFAULT_BATCHES, show_default=True,
              help="Images per call; repeat or comma-separate for several.")
@click.option("--repeat", type=int, default=5, show_default=True, help="Timed rounds (every configuration once each).")
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed rounds first.")
@click.option("--reference/--no-reference", default=True, show_default=True,
              help="Also time the PyTorch reference sampler (dense, the official algorithm).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--cfg", type=float, default=1.5, show_default=True)
@click.option("--top-k", type=int, default=0, show_default=True)
@click.option("--top-p", type=float, default=0.0, show_default=True)
@draw_option
@click.option("--threads", type=THREADS, default=None, help=threads_help("CPU threads for every runner (default: all cores)"))
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="cpu or cuda[:N].")
@click.option("--memory", type=click.Choice(["all", "dense", "off"]), default="all", show_default=True,
              help="Peak RSS probes, one fresh subprocess per configuration (dense: dense configurations only).")
@click.option("--quality-samples", type=int, default=64, show_default=True,
              help="Samples per policy for the quality metrics (reference model only; 0: skip; FID_feat from 258).")
@click.option("--nova-samples", type=int, default=20, show_default=True,
              help="Reference-model samples from which fixed:nova-ref takes NOVA's ratios.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="docs/benchmarks", show_default=True,
              help="Directory of the report (JSON, Markdown, PNG plots).")
@click.option("--name", default=None, help="File name stem of the report (default: from the model).")
@click.option("--note", default="", help="A line put at the top of the Markdown report.")
def bench_cmd(engines_dir, var_path, vae_path, preset, model, random_weights, backends, policies, batches, repeat, warmup,
              reference, seed, cfg, top_k, top_p, draw, threads, device, memory, quality_samples, nova_samples, out_dir,
              name, note):
    """Benchmark backends x pruning policies x batch sizes side by side: warm-up, then timed runs
    interleaved round-robin across configurations; images/s, latency per scale, transformer vs
    decoder vs outside-backend time, analytic FLOPs, peak RSS and (reference model) quality; a
    table here, JSON, Markdown and PNG plots under --out, with the issue's targets PASS/MISS."""
    from nova_deploy.bench.configs import parse_batches, parse_policies, parse_runners
    from nova_deploy.bench.report import print_tables, write_report
    from nova_deploy.bench.run import BenchOptions, run_bench
    from nova_deploy.bench.targets import evaluate_targets
    from nova_deploy.sampling import SamplingParams

    runners, policy_texts = parse_runners(backends), parse_policies(policies)
    for opt, value, low in (("--repeat", repeat, 1), ("--warmup", warmup, 0), ("--quality-samples", quality_samples, 0),
                            ("--nova-samples", nova_samples, 1)):
        if value < low:
            raise InvalidArgument(f"{opt} must be >= {low}, got {value}")
    if not Path(out_dir).is_dir():
        raise InvalidArgument(f"output directory {out_dir} does not exist")
    params = SamplingParams(cfg=cfg, top_k=top_k, top_p=top_p, draw=draw)
    wanted = parse_batches(batches, max_batch=10 ** 6)
    export_dir, default_name = _export_to_bench(engines_dir, var_path, vae_path, preset, model, random_weights, max(wanted))
    from nova_deploy.export.manifest import open_export

    max_batch = open_export(export_dir, verify_hashes=False).spec.max_batch
    batch_list = parse_batches(batches, max_batch)
    threads = threads or len(os.sched_getaffinity(0))
    opt = BenchOptions(runners=runners, policies=policy_texts, batches=batch_list, reference=reference, warmup=warmup,
                       repeat=repeat, seed=seed, params=params, threads=threads, device=device, memory=memory,
                       quality_samples=quality_samples, nova_samples=nova_samples)
    name = name or default_name
    command = _command(export_dir, opt, out_dir, name, note)
    click.echo(f"bench: {command}", err=True)
    result = run_bench(export_dir, opt, log=lambda s: click.echo(s, err=True))
    print_tables(result, evaluate_targets(result))
    paths = write_report(result, out_dir, name, command, note)
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())} ({result.seconds:.0f} s)", err=True)


def _export_to_bench(engines_dir, var_path, vae_path, preset, model, random_weights, max_batch):
    """(export directory, report name): the given export, or the model exported (or reused) first."""
    from nova_deploy.artifacts.names import MANIFEST

    has_model = var_path is not None or vae_path is not None or preset is not None or model is not None
    if preset is not None and var_path is None and vae_path is None and not random_weights:
        raise InvalidArgument(f"--preset {preset} alone builds random weights: add --random-weights to benchmark "
                              f"them (speed only), or give --checkpoint/--vae")
    if random_weights and (preset is None or var_path is not None):
        raise InvalidArgument("--random-weights goes with --preset alone (no --checkpoint/--vae)")
    if engines_dir is not None and not has_model:
        if not (Path(engines_dir) / MANIFEST).is_file():
            raise InvalidArgument(f"{engines_dir}: no such export (no {MANIFEST}); make one with "
                                  f"`nova-deploy export --out {engines_dir}`, or give a model to export there")
        return engines_dir, _name_from_export(engines_dir)
    from nova_deploy.export.exporter import export_model
    from nova_deploy.model_source import resolve_models

    src = resolve_models(var_path, vae_path, preset, model=model)
    name = preset or model or (Path(var_path).stem if var_path else "ref")
    engines_dir = engines_dir or f"engines/bench-{name}"
    click.echo(f"model: {src.description}; exporting to {engines_dir} (reused if already there; a fresh export "
               f"takes minutes, d16 more than 20 on 2 CPU cores)", err=True)
    Path(engines_dir).parent.mkdir(parents=True, exist_ok=True)
    export_model(src, engines_dir, max_batch=max(8, max_batch), progress=True)
    return engines_dir, name


def _name_from_export(engines_dir) -> str:
    import json

    from nova_deploy.artifacts.names import MANIFEST

    try:
        model = json.loads((Path(engines_dir) / MANIFEST).read_text())["model"]
        src = model.get("source") or {}
        return src.get("preset") or Path(engines_dir).name
    except (OSError, ValueError, KeyError):
        return Path(engines_dir).name


def _command(export_dir, opt, out_dir, name, note) -> str:
    """The command with every option explicit, so that a re-run measures the same configurations."""
    args = ["nova-deploy", "bench", "--engines", str(export_dir), "--backends", ",".join(opt.runners),
            "--policies", ",".join(opt.policies), "--batch", ",".join(map(str, opt.batches)),
            "--repeat", str(opt.repeat), "--warmup", str(opt.warmup),
            "--reference" if opt.reference else "--no-reference", "--seed", str(opt.seed),
            "--cfg", f"{opt.params.cfg:g}", "--top-k", str(opt.params.top_k), "--top-p", f"{opt.params.top_p:g}", "--draw", opt.params.draw,
            "--threads", str(opt.threads), "--device", opt.device, "--memory", opt.memory,
            "--quality-samples", str(opt.quality_samples), "--nova-samples", str(opt.nova_samples),
            "--out", str(out_dir), "--name", name]
    if note:
        args += ["--note", note]
    return shlex.join(args)
