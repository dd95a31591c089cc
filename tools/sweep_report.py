"""Markdown tables of a frontier sweep (tools/nova_sweep.py's sweep.json): every row, and NOVA's
FID_feat against FastVAR's at FastVAR's FLOP reductions.

NOVA's FID_feat at a FastVAR row's reduction is read off each NOVA family's Pareto front (the
family's rows no other of its rows beats in both FLOP reduction and FID_feat: one reading of NOVA swept
over its strength), linearly between the two neighbouring points; outside the front's range it is not
measured. "any NOVA" is the best family at that reduction.

    python tools/sweep_report.py docs/nova_sweep/nova-ref/sweep.json   # writes table.md beside it
"""
import argparse
import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from nova_deploy.atomic_write import write_text_atomic

NOVA_FAMILIES = ("nova b", "nova-dist", "summary keep-", "summary keep+", "summary prune-", "summary prune+",
                 "summary-dist")
FAMILIES = NOVA_FAMILIES + ("fastvar", "fixed", "dense")  # every row's name starts with one of them
Point = Tuple[float, float]  # (FLOP reduction, FID_feat)


def dense_spread(rows) -> float:
    """Standard deviation of FID_feat over the dense seed sets: the error bar of every row."""
    fids = torch.tensor([r["fid_feat"] for r in rows if r["name"].startswith("dense")], dtype=torch.float64)
    return float(fids.std()) if fids.numel() >= 2 else 0.0


def family_of(name: str) -> str:
    for f in FAMILIES:
        if name.startswith(f):
            return f
    return name


def pareto_front(points: Sequence[Point]) -> List[Point]:
    """Points no other point beats in both reduction (higher) and FID_feat (lower), by reduction."""
    front = [p for p in points if not any(q != p and q[0] >= p[0] and q[1] <= p[1] for q in points)]
    return sorted(set(front))


def fid_at(front: Sequence[Point], reduction: float) -> Optional[float]:
    """FID_feat on the front at this reduction, linear between neighbours; None outside its range."""
    for (x0, y0), (x1, y1) in zip(front, front[1:]):
        if x0 <= reduction <= x1:
            return y0 + (y1 - y0) * (reduction - x0) / (x1 - x0)
    return next((y for x, y in front if abs(x - reduction) < 1e-9), None)


def rows_table(rows) -> str:
    dense = next(r for r in rows if r["name"] == "dense")
    out = ["| config | policy | transformer FLOP reduction | wall-time speedup | accuracy | FID_feat | PSNR vs dense |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        psnr = "-" if r["name"].startswith("dense") else f"{r['psnr_vs_dense']:.2f} dB"
        out.append(f"| {r['name']} | `{r.get('policy_text', '')}` | {r['flop_reduction']:.2f}x | "
                   f"{dense['seconds_per_image'] / r['seconds_per_image']:.2f}x | "
                   f"{100 * r['classifier_accuracy']:.1f}% | {r['fid_feat']:.2f} | {psnr} |")
    return "\n".join(out)


def versus_fastvar_table(rows) -> str:
    fronts = {f: pareto_front([(r["flop_reduction"], r["fid_feat"]) for r in rows if family_of(r["name"]) == f])
              for f in NOVA_FAMILIES}
    names = [f for f in fronts if fronts[f]]
    out = ["| FastVAR row | FLOP reduction | FastVAR FID_feat | " + " | ".join(names) + " | any NOVA |",
           "| --- | --- | --- | " + " | ".join("---" for _ in names) + " | --- |"]
    for r in rows:
        if family_of(r["name"]) != "fastvar":
            continue
        fids = [fid_at(fronts[f], r["flop_reduction"]) for f in names]
        measured = [fid for fid in fids if fid is not None]
        cells = ["not measured" if fid is None else f"{fid:.2f}" + (" (ahead)" if fid < r["fid_feat"] else "")
                 for fid in fids + [min(measured) if measured else None]]
        out.append(f"| {r['name']} | {r['flop_reduction']:.2f}x | {r['fid_feat']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def report(sweep: dict) -> str:
    rows, meta, choice = sweep["rows"], sweep["meta"], sweep["default_choice"]
    lines = [f"# Frontier sweep: {meta['model']}", "",
             f"`{meta['command']}`; {meta['machine']}; generated on {meta['generated_on']}.",
             f"FID_feat error bar (standard deviation over the dense seed sets): {dense_spread(rows):.2f}.",
             "Wall-time speedup: the dense row's seconds per image over the row's, same run.", "",
             rows_table(rows), "",
             "NOVA's FID_feat at each FastVAR row's FLOP reduction, on each reading's Pareto front "
             "(linear between its neighbouring points):", "", versus_fastvar_table(rows), "",
             f"Default by the rule (docs/NOVA.md section 10): **{choice['chosen']}** "
             f"(`{choice['policy']}`), passes the rule: {choice['passes_rule']}."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_json", type=Path)
    args = ap.parse_args()
    try:
        sweep = json.loads(args.sweep_json.read_text())
        text = report(sweep)
    except (OSError, ValueError, KeyError, StopIteration) as e:
        raise SystemExit(f"error: {args.sweep_json} is not a sweep.json written by tools/nova_sweep.py ({e!r})")
    out = args.sweep_json.with_name("table.md")
    write_text_atomic(out, text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
