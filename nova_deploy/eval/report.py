"""An EvalReport as a terminal table, JSON and a PNG (sample grid beside the entropy curve)."""
from pathlib import Path
from typing import List

from nova_deploy.atomic_write import require_parent_dir, write_atomic
from nova_deploy.data import CLASS_NAMES, data_fingerprint
from nova_deploy.eval.classifier import IMAGE_SIZE


def _aligned(rows: List[tuple], rule_under_header: bool = False) -> List[str]:
    """Rows of cells as left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    if rule_under_header:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_table(reports: List) -> str:
    rows = [("policy", "FLOP red.", "accuracy", "FID_feat", "real-vs-real", "PSNR/dense", "SSIM/dense", "tokens=dense@last")]
    for r in reports:
        rows.append((r.policy.split(" ")[0], f"{r.flop_reduction:.2f}x", f"{100 * r.classifier_accuracy:.1f}%",
                     f"{r.fid_feat:.2f}", f"{r.fid_feat_real_vs_real:.2f}",
                     "-" if r.psnr_vs_dense is None else f"{r.psnr_vs_dense:.2f} dB",
                     "-" if r.ssim_vs_dense is None else f"{r.ssim_vs_dense:.4f}",
                     "-" if r.token_agreement_per_scale is None else f"{100 * r.token_agreement_per_scale[-1]:.1f}%"))
    lines = [f"images from: {reports[0].source}; fidelity (PSNR, SSIM, tokens) against the PyTorch sampler's "
             f"dense fp32 images, same seeds and labels"]
    lines += _aligned(rows, rule_under_header=True)
    entropy = ", ".join(f"{e:.3f}" for e in reports[0].entropy_per_scale)
    lines.append(f"mean token entropy per scale ({reports[0].policy.split(' ')[0]}): {entropy}")
    return "\n".join(lines)


def format_per_class(reports: List) -> str:
    """Accuracy per requested class, one row per policy, and each class's most frequent wrong
    reading under the first policy: the overall accuracy hides which shapes a setting loses."""
    rows = [("policy",) + CLASS_NAMES]
    for r in reports:
        rows.append((r.policy.split(" ")[0],) + tuple(f"{100 * a:.0f}%" for a in r.per_class_accuracy))
    lines = ["accuracy per class:"] + _aligned(rows)
    first = reports[0]
    misread = []
    for i, row in enumerate(first.confusion):
        wrong = [(n, j) for j, n in enumerate(row) if j != i and n > 0]
        if wrong:
            n, j = max(wrong)
            misread.append(f"{CLASS_NAMES[i]} as {CLASS_NAMES[j]} {100 * n / sum(row):.0f}%")
    if misread:
        lines.append(f"most frequent misreading ({first.policy.split(' ')[0]}): " + ", ".join(misread))
    return "\n".join(lines)


def eval_record(model: str, seconds: float, options: dict, reconstruction: dict, reports: List) -> dict:
    """What `eval --json` writes. The data goes with the numbers: a per-class column is labelled by the
    classes it was measured on, and the fingerprint tells same-named classes drawn differently apart."""
    return {"model": model, "seconds": round(seconds, 1), "options": options, "classes": list(CLASS_NAMES),
            "data_fingerprint": data_fingerprint(IMAGE_SIZE),  # eval refuses models of other sizes
            "vqvae_reconstruction": reconstruction, "reports": [r.to_dict() for r in reports]}


def eval_png(images_B3HW, reports: List, path) -> Path:
    from matplotlib.figure import Figure  # not pyplot: no display needed, matplotlib's backend left as it was

    path = require_parent_dir(path)
    B, _, H, W = images_B3HW.shape
    ncol = 10
    nrow = (B + ncol - 1) // ncol
    grid = images_B3HW.clamp(0, 1).reshape(nrow, ncol, 3, H, W).permute(0, 3, 1, 4, 2).reshape(nrow * H, ncol * W, 3)
    fig = Figure(figsize=(12, 4.2))
    ax_img, ax_e = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
    ax_img.imshow(grid.cpu().numpy())
    ax_img.set_axis_off()
    ax_img.set_title("samples (columns: classes 0..9)")
    for r in reports:
        ax_e.plot(r.entropy_per_scale, marker="o", label=r.policy.split(" ")[0])
    ax_e.set(xlabel="scale", ylabel="mean token entropy / log V", title="entropy per scale")
    ax_e.legend()
    fig.tight_layout()
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
