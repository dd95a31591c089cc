"""Plots of NOVA's decisions: entropy curves with the activation scale, and the scale ratios."""
from pathlib import Path
from typing import List

from nova_deploy.atomic_write import require_parent_dir, write_atomic


def plot_trace(trace: List[dict], path) -> Path:
    # a Figure of its own, not pyplot: it needs no display and leaves matplotlib's backend as it was
    from matplotlib.figure import Figure

    path = require_parent_dir(path)
    fig = Figure(figsize=(10, 3.6))
    ax_e, ax_r = fig.subplots(1, 2)
    for b, img in enumerate(trace):
        line, = ax_e.plot(img["entropy_curve"], marker="o", label=f"image {b}")
        a = img.get("activation_scale")
        if a is not None and a >= 0:
            ax_e.axvline(a, color=line.get_color(), linestyle=":", alpha=0.7)
        ax_r.plot(img["scale_ratio"], marker="o", color=line.get_color())
    ax_e.set(xlabel="scale", ylabel="mean token entropy / log V", title="entropy (dotted: activation)")
    ax_r.set(xlabel="scale", ylabel="scale pruning ratio", title=f"ratios ({trace[0]['policy']})")
    if len(trace) <= 8:
        ax_e.legend(fontsize=7)
    fig.tight_layout()
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
