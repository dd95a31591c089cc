"""A BenchResult as a terminal table, JSON, a Markdown report and two PNG plots.

Files under the output directory, `<name>` being the report's name (default: the model's):
`<name>.json`, `<name>.md`, `<name>-speed.png`, `<name>-quality.png` (reference model only).
Every file is written under a temporary name and renamed.
"""
import os
import platform
from pathlib import Path
from typing import Dict, List, Optional

from nova_deploy.bench.targets import Target, evaluate_targets
from nova_deploy.errors import InvalidArgument
from nova_deploy.atomic_write import write_atomic, write_json_atomic, write_text_atomic
from nova_deploy.machine import cpu_bf16_flags, cpu_name


# ---------------------------------------------------------------- machine
def machine() -> dict:
    import onnxruntime
    import torch

    cpu = cpu_name(fallback=platform.processor() or "?")
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError):
        mem = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "memory_gib": None if mem is None else round(mem, 1), "gpu": gpu, "os": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "onnxruntime": onnxruntime.__version__, "cpu_native_bf16": cpu_bf16_flags()}


# ---------------------------------------------------------------- rows
def _f(x: Optional[float], fmt: str = "{:.2f}", none: str = "-") -> str:
    return none if x is None else fmt.format(x)


COLUMNS = ("configuration", "img/s", "s/img med", "s/img min", "transf. s", "decoder s", "outside %",
           "GFLOP/img", "FLOP red.", "speedup e2e", "speedup transf.", "realised/FLOP", "x reference",
           "x torch-compile", "peak RSS MB", "RSS growth MB")


def rows(result) -> List[List[str]]:
    out = []
    for r in result.results:
        st, m, b = r.stats, r.memory, r.config.batch
        out.append([r.config.label, f"{r.images_per_s:.2f}", f"{r.s_per_image:.3f}", f"{st['wall_s'].min / b:.3f}",
                    f"{st['transformer_s'].median:.3f}", f"{st['decoder_s'].median:.3f}",
                    f"{100 * st['outside_fraction'].median:.0f}", f"{r.flops_pruned / 1e9:.2f}",
                    f"{r.flop_reduction:.2f}x", _f(r.speedup_e2e, "{:.2f}x"), _f(r.speedup_transformer, "{:.2f}x"),
                    _f(r.realised_over_flop), _f(r.vs_reference, "{:.2f}x"), _f(r.vs_torch_compile, "{:.2f}x"),
                    _f(m and m.peak_rss_mb, "{:.0f}"), _f(m and m.growth_mb, "{:.0f}")])
    return out


QUALITY_COLUMNS = ("policy", "FLOP red.", "accuracy", "PSNR/dense dB", "SSIM/dense", "tokens=dense@last",
                   "FID_feat", "real-vs-real")


def quality_rows(result) -> List[List[str]]:
    return [[q.policy, f"{q.flop_reduction:.2f}x", f"{100 * q.classifier_accuracy:.1f}%", _f(q.psnr_vs_dense),
             _f(q.ssim_vs_dense, "{:.4f}"), _f(q.token_agreement_last_scale, "{:.1%}"), _f(q.fid_feat),
             _f(q.fid_feat_real_vs_real)] for q in result.quality.values()]


def target_rows(targets: List[Target]) -> List[List[str]]:
    return [[t.status, t.name, _f(t.measured, "{:.3f}"), f"{'>=' if t.higher_is_better else '<='} {t.threshold:g}",
             t.detail, t.limit if t.status == "MISS" else ""] for t in targets]


# ---------------------------------------------------------------- terminal
def print_tables(result, targets: List[Target], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(Console().width, 190))  # wide tables wrap badly at 80 columns
    t = Table(title=f"nova-deploy bench: {result.model}")
    for c in COLUMNS:
        t.add_column(c, justify="left" if c == "configuration" else "right", no_wrap=c == "configuration")
    for row in rows(result):
        t.add_row(*row)
    console.print(t)
    if result.quality:
        q = Table(title=f"quality on {next(iter(result.quality.values())).runner} "
                        f"({next(iter(result.quality.values())).samples} samples per policy)")
        for c in QUALITY_COLUMNS:
            q.add_column(c)
        for row in quality_rows(result):
            q.add_row(*row)
        console.print(q)
    g = Table(title="targets")
    for c in ("status", "target", "measured", "needs"):
        g.add_column(c)
    for row in target_rows(targets):
        g.add_row(*row[:4], style="green" if row[0] == "PASS" else "red" if row[0] == "MISS" else "yellow")
    console.print(g)


# ---------------------------------------------------------------- JSON and Markdown
def to_json(result, targets: List[Target], command: str, mach: dict) -> dict:
    o = result.options
    return {"command": command, "machine": mach, "model": result.model, "export_dir": result.export_dir,
            "reference_model": result.is_reference_model, "num_scales": result.num_scales,
            "options": {"runners": o.runners, "policies": o.policies, "batches": o.batches, "reference": o.reference,
                        "warmup": o.warmup, "repeat": o.repeat, "seed": o.seed, "cfg": o.params.cfg,
                        "top_k": o.params.top_k, "top_p": o.params.top_p, "draw": o.params.draw, "threads": o.threads, "device": o.device,
                        "memory": o.memory, "quality_samples": o.quality_samples},
            "seconds": result.seconds, "load_average": result.load_average, "timed_order": result.order,
            "configurations": [r.to_json() for r in result.results],
            "nova_ratios": None if result.nova_ratios is None else result.nova_ratios.to_json(),
            "quality": {k: q.to_json() for k, q in result.quality.items()},
            "skipped_runners": result.skipped, "compile": result.compile,
            "targets": [t.to_json() for t in targets]}


def _md_table(header, body) -> List[str]:
    esc = [[str(c).replace("|", "\\|") for c in row] for row in body]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in esc]


def to_markdown(result, targets: List[Target], command: str, mach: dict, name: str, note: str = "") -> str:
    o = result.options
    L = [f"# Benchmark: {result.model}", ""]
    if note:
        L += [f"> {note}", ""]
    L += ["Command (re-run it to refresh every file of this report):", "", "```bash", command, "```", "",
          "## Machine", "",
          f"- CPU: {mach['cpu']}, {mach['logical_cores']} logical cores ({mach['usable_cores']} usable), "
          f"{mach['memory_gib']} GiB memory; GPU: {mach['gpu'] or 'none'}; native bf16: "
          f"{', '.join(mach.get('cpu_native_bf16') or []) or 'none (bf16 matmuls are converted to fp32)'}",
          f"- {mach['os']}, Python {mach['python']}, torch {mach['torch']} ({mach['torch_threads']} threads), "
          f"onnxruntime {mach['onnxruntime']}",
          f"- load average (1/5/15 min) at start {result.load_average.get('start')}, after the timed runs "
          f"{result.load_average.get('after_timing')}", "",
          "## Setup", "",
          f"- export `{result.export_dir}`, {result.num_scales} scales; batches {o.batches}; CFG {o.params.cfg}, "
          f"top-k {o.params.top_k}, top-p {o.params.top_p}, seed {o.seed} (the same work every run); deployed runners "
          f"draw tokens `{o.params.draw}`, the reference sampler and torch-compile the official way",
          f"- {o.warmup} warm-up round(s), then {o.repeat} timed rounds, each running every configuration once "
          f"(round-robin, each round starting one configuration later); figures are the median over rounds, "
          f"`min` the fastest",
          "- `torch-reference`: `nova_deploy.sampler.generate` on the PyTorch model (the official algorithm); "
          "`torch`: the runtime's PyTorch eager backend over the same graphs' modules; `onnxruntime`: ONNX Runtime "
          "with pre-packing off (one shared weights copy); `onnxruntime-prepack`: pre-packing on; "
          "`torch-bf16-decoder`: the torch backend with its opt-in bf16 decoder (changes the image); "
          "`torch-bf16`: the torch backend with transformer and decoder in bf16 (changes tokens); "
          "`torch-compile`: the reference sampler with its scale step and decoder under `torch.compile` "
          "(compiled before the warm-up rounds, so no timed run compiles)",
          "- x reference = the reference sampler's median time (dense: the official algorithm) over this "
          "configuration's, same batch; x torch-compile = torch-compile's at the same batch and policy over "
          "this one's (`-` where that runner did not run)",
          "- transformer = the scale graphs (blocks and head), decoder = the VQVAE decoder, outside % = time "
          "outside backend calls (reference: outside the scale steps and decoder) over the wall time",
          "- FLOPs: analytic transformer FLOPs per image (CFG's two rows), `nova_deploy/flops.py`; speedups are "
          "over the same runner's dense configuration at the same batch; realised/FLOP = transformer speedup / "
          "FLOP reduction",
          "- memory: " + ("not measured (--memory off)" if o.memory == "off" else
                          "peak RSS of a fresh process that imports the libraries, opens the configuration and "
                          "generates twice; growth = peak minus the RSS after imports"
                          + (" (dense configurations only)" if o.memory == "dense" else "")), ""]
    if result.nova_ratios is not None:
        n = result.nova_ratios
        how = ("on the same scale schedule" if n.same_schedule else
               f"mapped by position from the end onto {result.num_scales} scales (extra first scales: 0)")
        L += [f"- `fixed:nova-ref` = `{n.fixed}`: NOVA's default config's mean scale ratios over {n.samples} "
              f"samples of the bundled model {n.reference_model} ({n.reference_ratios}, FLOP reduction there "
              f"{n.reference_flop_reduction:.2f}x), {how}", ""]
    for n, why in result.skipped.items():
        L += [f"- **{n} did not run here**: {why}"]
    for n, info in result.compile.items():
        L += [f"- {n}: {info['graphs']} graphs compiled in {_f(info['compile_s'], '{:.1f}')} s before the "
              f"warm-up ({info['backend']}, mode {info['mode']}, {info['options']}); "
              f"{info['graphs_in_timed_runs']} compiled during timed runs"]
    if result.skipped or result.compile:
        L += [""]
    L += ["## Speed", ""] + _md_table(COLUMNS, rows(result)) + ["", f"![speed]({name}-speed.png)", "",
                                                                 "### Per-scale transformer latency (ms, median per batch)", ""]
    K = result.num_scales
    L += _md_table(["configuration"] + [f"s{si}" for si in range(K)],
                   [[r.config.label] + [f"{1000 * s.median:.1f}" for s in r.per_scale] for r in result.results]) + [""]
    if result.quality:
        q0 = next(iter(result.quality.values()))
        L += ["## Quality (reference model)", "",
              f"{q0.samples} samples per policy on `{q0.runner}`, untimed, same labels and seeds for every policy; "
              f"fidelity against the same runner's dense images. FID_feat needs at least 258 samples "
              f"(`--quality-samples`) and is left out below that.", ""] + _md_table(QUALITY_COLUMNS, quality_rows(result))
        L += ["", f"![quality vs speedup]({name}-quality.png)", ""]
    elif not result.is_reference_model:
        L += ["## Quality", "", "Not measured: quality metrics need the bundled reference model (the classifier "
              "knows its shapes); this model is for speed.", ""]
    L += ["## Targets", ""] + _md_table(["status", "target", "measured", "needs", "figures", "what limits it"],
                                        target_rows(targets)) + [""]
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- plots
def _figure(**kwargs):
    """A Figure of its own, not pyplot's: it needs no display and leaves matplotlib's backend as it was."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(fig, path: Path) -> None:
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def speed_png(result, path: Path) -> None:
    rs = result.results
    labels = [r.config.label for r in rs]
    per_img = lambda key: [r.stats[key].median / r.config.batch for r in rs]  # noqa: E731
    tr, dec = per_img("transformer_s"), per_img("decoder_s")
    rest = [max(0.0, r.s_per_image - a - b) for r, a, b in zip(rs, tr, dec)]
    fig = _figure(figsize=(9, 0.35 * len(rs) + 1.5))
    ax = fig.subplots()
    y = range(len(rs))
    ax.barh(y, tr, label="transformer (scale graphs)")
    ax.barh(y, dec, left=tr, label="decoder")
    ax.barh(y, rest, left=[a + b for a, b in zip(tr, dec)], label="other graphs + outside calls")
    ax.plot([r.stats["wall_s"].min / r.config.batch for r in rs], list(y), "k|", markersize=12, label="fastest run")
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set(xlabel="seconds per image (median)", title=f"speed per configuration: {result.model}")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def quality_png(result, path: Path) -> None:
    runner = next(iter(result.quality.values())).runner
    fig = _figure(figsize=(10, 4))
    a1, a2 = fig.subplots(1, 2)
    for b in result.options.batches:
        for label, q in result.quality.items():
            r = result.find(runner, label, b)
            if r is None:
                continue
            x = r.speedup_e2e or 1.0
            a1.scatter(x, 100 * q.classifier_accuracy, label=f"{label} b{b}")
            if q.psnr_vs_dense is not None:
                a2.scatter(x, q.psnr_vs_dense, label=f"{label} b{b}")
    a1.set(xlabel=f"end-to-end speedup over dense ({runner})", ylabel="classifier accuracy %",
           title="accuracy vs speedup")
    a2.set(xlabel=f"end-to-end speedup over dense ({runner})", ylabel="PSNR vs dense (dB)",
           title="fidelity to dense vs speedup")
    for a in (a1, a2):
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


# ---------------------------------------------------------------- all files
def write_report(result, out_dir, name: str, command: str, note: str = "") -> Dict[str, Path]:
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InvalidArgument(f"output directory {out_dir} does not exist")
    mach = machine()
    targets = evaluate_targets(result)
    paths = {"json": out_dir / f"{name}.json", "markdown": out_dir / f"{name}.md",
             "speed_png": out_dir / f"{name}-speed.png"}
    write_json_atomic(paths["json"], to_json(result, targets, command, mach))
    write_text_atomic(paths["markdown"], to_markdown(result, targets, command, mach, name, note))
    speed_png(result, paths["speed_png"])
    if result.quality:
        paths["quality_png"] = out_dir / f"{name}-quality.png"
        quality_png(result, paths["quality_png"])
    return paths
