"""Quality against FLOP reduction and CPU wall time for NOVA and FastVAR at several budgets, on the
reference model, measured in one run (dense reference generated once, interleaving by config).

    python tools/nova_sweep.py --samples 1000 --out docs/nova_sweep
writes sweep.json and sweep.png (quality vs FLOP reduction) under --out.

Rows: dense at --dense-seeds seed sets (their spread is the noise of dense that the default-config
rule needs), NOVA at four budgets, NOVA with FastVAR's token ranking ("nova-dist", the ablation
that separates NOVA's schedule from its ranking), FastVAR at four budgets. `default_choice` in
sweep.json applies the issue's rule: the NOVA config with the largest FLOP reduction whose FID_feat
is within the dense spread of dense and whose accuracy is at most 1 point (or the dense spread,
if larger) below dense.
"""
import argparse
import json
import os
import time
from pathlib import Path

import torch

from nova_deploy.atomic_write import write_json_atomic
from nova_deploy.eval.evaluate import EvalCache, evaluate
from nova_deploy.model_source import resolve_models
from nova_deploy.nova.config import FastVARConfig, NovaConfig
from nova_deploy.nova.policy import Policy
from nova_deploy.sampling import SamplingParams


DENSE_SEED_STEP = 1_000_000  # seed sets far apart: no sample is shared between them


def configs(K: int, dense_seeds: int = 1):
    """(name, policy, seed) per row; every non-dense row uses seed 0, like the first dense row."""
    out = [("dense" if n == 0 else f"dense s{n}", Policy("none"), n * DENSE_SEED_STEP) for n in range(dense_seeds)]
    nova = {0.2: (0.1, 0.5), 0.3: (0.1, 0.75), 0.45: (0.15, 0.85), 0.6: (0.15, 0.9)}
    for base, (growth, r_max) in nova.items():
        out.append((f"nova b{base}", Policy("nova", NovaConfig(base_ratio=base, growth_per_scale=growth, r_max=r_max)), 0))
    for base in (0.3, 0.45):
        growth, r_max = nova[base]
        out.append((f"nova-dist b{base}", Policy("nova", NovaConfig(base_ratio=base, growth_per_scale=growth,
                                                                     r_max=r_max, importance="distance")), 0))
    for r in ((0.25, 0.35), (0.4, 0.5), (0.55, 0.65), (0.7, 0.8)):
        out.append((f"fastvar {r[0]}/{r[1]}", Policy("fastvar", FastVARConfig(start_scale=-2, ratios=r)), 0))
    return out


def choose_default(rows) -> dict:
    """The issue-4 rule on the measured rows (needs >= 2 dense seed sets for the noise of dense)."""
    dense = [r for r in rows if r["name"].startswith("dense")]
    if len(dense) < 2 or dense[0]["name"] != "dense":
        return {"chosen": None, "why": "needs the seed-0 dense row and at least one more dense seed set"}
    fid_noise = max(r["fid_feat"] for r in dense) - min(r["fid_feat"] for r in dense)
    acc_noise = max(r["classifier_accuracy"] for r in dense) - min(r["classifier_accuracy"] for r in dense)
    ref = dense[0]
    fid_limit = ref["fid_feat"] + fid_noise
    acc_limit = ref["classifier_accuracy"] - max(0.01, acc_noise)
    ok = [r for r in rows if r["name"].startswith("nova b")
          and r["fid_feat"] <= fid_limit and r["classifier_accuracy"] >= acc_limit]
    best = max(ok, key=lambda r: r["flop_reduction"], default=None)
    return {"chosen": best["name"] if best else None, "flop_reduction": best["flop_reduction"] if best else None,
            "dense_fid_spread": fid_noise, "dense_accuracy_spread": acc_noise, "fid_limit": fid_limit,
            "accuracy_limit": acc_limit, "dense_seed_sets": len(dense),
            "within": [r["name"] for r in ok]}


def plot(rows, path: Path, speed: bool = True):
    """FID_feat, accuracy and PSNR to dense against FLOP reduction; with speed, FID_feat against
    wall-time speedup too (leave it out for runs on a machine shared with other jobs)."""
    from matplotlib.figure import Figure  # not pyplot: no display needed, matplotlib's backend left as it was

    fig = Figure(figsize=(18 if speed else 14, 4))
    axes = fig.subplots(1, 4 if speed else 3)
    for family, marker in (("nova b", "o"), ("nova-dist", "^"), ("fastvar", "s"), ("dense", "*")):
        sel = [r for r in rows if r["name"].startswith(family)]
        if not sel:
            continue
        x = [r["flop_reduction"] for r in sel]
        axes[0].plot(x, [r["fid_feat"] for r in sel], marker=marker, label=family)
        axes[1].plot(x, [100 * r["classifier_accuracy"] for r in sel], marker=marker, label=family)
        if family != "dense":
            axes[2].plot(x, [r["psnr_vs_dense"] for r in sel], marker=marker, label=family)
        if speed:
            axes[3].plot([r.get("speedup_vs_dense", 1.0) for r in sel], [r["fid_feat"] for r in sel],
                         marker=marker, label=family)
    rr = rows[0]["fid_feat_real_vs_real"]
    for ax in (axes[0], axes[3]) if speed else (axes[0],):
        ax.axhline(rr, color="gray", linestyle=":", label="real vs real")
    axes[0].set(xlabel="transformer FLOP reduction (x)", ylabel="FID_feat (lower is better)")
    axes[1].set(xlabel="transformer FLOP reduction (x)", ylabel="classifier accuracy (%)")
    axes[2].set(xlabel="transformer FLOP reduction (x)", ylabel="PSNR to dense, same seeds (dB)")
    if speed:
        axes[3].set(xlabel="CPU wall-time speedup over dense (x)", ylabel="FID_feat")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=1.5)
    ap.add_argument("--out", default="docs/nova_sweep")
    ap.add_argument("--only", default=None, help="comma-separated prefixes of config names to run")
    ap.add_argument("--dense-seeds", type=int, default=3, help="dense rows at this many disjoint seed sets")
    ap.add_argument("--no-speed-plot", action="store_true",
                    help="leave the wall-time panel out of the plot (the machine is shared with other jobs)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    src = resolve_models(None, None, None)
    params = SamplingParams(cfg=args.cfg)
    cache, rows = EvalCache(), []
    chosen = configs(len(src.var.patch_nums), args.dense_seeds)
    if args.only:
        chosen = [c for c in chosen if any(c[0].startswith(p) for p in args.only.split(","))]
    for name, policy, seed in chosen:
        t0 = time.perf_counter()
        rep = evaluate(src.var, src.vae, policy, n_samples=args.samples, batch=args.batch, params=params,
                       seed=seed, cache=cache)
        row = {"name": name, "seed": seed, **rep.to_dict(), "wall_s": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("name", "flop_reduction", "classifier_accuracy", "fid_feat",
                                               "fid_feat_real_vs_real", "psnr_vs_dense", "seconds_per_image")}),
              flush=True)
    dense_spi = next(r["seconds_per_image"] for r in rows if r["name"] == "dense") if any(
        r["name"] == "dense" for r in rows) else None
    for r in rows:
        if dense_spi:
            r["speedup_vs_dense"] = dense_spi / r["seconds_per_image"]
    meta = {"command": "python tools/nova_sweep.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v),
            "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
            "model": src.description}
    choice = choose_default(rows)
    print(json.dumps({"default_choice": choice}), flush=True)
    write_json_atomic(out / "sweep.json", {"meta": meta, "rows": rows, "default_choice": choice})
    plot(rows, out / "sweep.png", speed=not args.no_speed_plot)


if __name__ == "__main__":
    main()
