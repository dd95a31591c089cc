"""At which scale does the model lose the class it was asked for?

Real held-out images are encoded into token pyramids; then, for k = 0..K, the first k scales are
taken from the real pyramid and the rest sampled by the VAR (same seeds for every k), and the
shipped classifier reads the result. k = 0 is plain sampling; k = K is the VQVAE's reconstruction.
The scale after which a class's accuracy jumps is where the model's prediction fails it.

    python tools/scale_forcing_probe.py [--checkpoint VAR --vae VQVAE] [--per-class 50] [--cfg 1.5] [--json probe.json]
"""
import argparse
import os
import sys
import time
from pathlib import Path

import torch

from nova_deploy.data import CLASS_NAMES, NUM_CLASSES, ShapesDataset
from nova_deploy.eval.classifier import IMAGE_SIZE, classify_images, load_classifier
from nova_deploy.eval.evaluate import check_model_fits_classifier
from nova_deploy.atomic_write import write_json_atomic
from nova_deploy.model_source import resolve_models
from nova_deploy.sampler import generate
from nova_deploy.sampling import SamplingParams

PROBE_SEED = 555_000  # images unseen in training, disjoint from eval's real sets


@torch.no_grad()
def forcing_accuracy(var, vae, clf, per_class: int, params: SamplingParams, seed: int = 0, batch: int = 100):
    """accuracy[k][class] with the first k scales forced from real pyramids."""
    n = per_class * NUM_CLASSES
    images, labels = ShapesDataset(seed=PROBE_SEED, length=n, size=IMAGE_SIZE).batch(0, n)
    pyramids = [vae.img_to_idxBl(images[start:start + batch]) for start in range(0, n, batch)]
    table = []
    for k in range(len(var.patch_nums) + 1):
        hits = torch.zeros(NUM_CLASSES)
        for start, pyramid in zip(range(0, n, batch), pyramids):
            lab = labels[start:start + batch]
            out = generate(var, len(lab), lab, g_seed=seed + start, params=params, forced_idx=pyramid[:k])
            ok = classify_images(clf, out.images)[0] == lab
            hits += torch.bincount(lab[ok], minlength=NUM_CLASSES)
        table.append((hits / per_class).tolist())
    return table


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None, help="VAR checkpoint (default: the bundled model)")
    ap.add_argument("--vae", default=None, help="VQVAE checkpoint (default: the bundled one)")
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=1.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the table here")
    args = ap.parse_args()
    if args.per_class < 1:
        ap.error(f"--per-class must be >= 1, got {args.per_class}")  # exit 2, as the CLI
    src = resolve_models(args.checkpoint, args.vae, None)
    check_model_fits_classifier(src.var, src.vae)
    t0 = time.perf_counter()
    table = forcing_accuracy(src.var, src.vae, load_classifier(), args.per_class, SamplingParams(cfg=args.cfg),
                             seed=args.seed)
    names = [c[:8] for c in CLASS_NAMES]
    print("forced scales  " + " ".join(f"{c:>8s}" for c in names) + "      all")
    for k, row in enumerate(table):
        label = "none" if k == 0 else f"0..{k - 1}"
        print(f"{label:13s}  " + " ".join(f"{100 * a:7.0f}%" for a in row) + f"  {100 * sum(row) / len(row):6.1f}%")
    if args.json:
        write_json_atomic(args.json, {
            "command": "python tools/scale_forcing_probe.py " + " ".join(sys.argv[1:]),
            "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
            "model": src.description, "classes": list(CLASS_NAMES), "per_class": args.per_class, "cfg": args.cfg,
            "accuracy_by_forced_scales": table, "seconds": round(time.perf_counter() - t0, 1)})
        print(f"wrote {Path(args.json)}")


if __name__ == "__main__":
    main()
