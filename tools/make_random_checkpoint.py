"""Write a randomly initialised VAR + VQVAE pair of a preset in the official .pth key layout.

    python tools/make_random_checkpoint.py d16 /tmp/d16    # -> var_d16.pth, vae.pth
Used to check, without downloading official weights, that official-layout files load strictly
and generate (the images are noise).
"""
import argparse
from pathlib import Path

import torch

from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import get_preset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("preset")
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    var, vae = build_pair(get_preset(args.preset), seed=args.seed)
    torch.save(var.state_dict(), out / f"var_{args.preset}.pth")
    torch.save(vae.state_dict(), out / "vae.pth")
    print(f"wrote {out}/var_{args.preset}.pth and {out}/vae.pth")


if __name__ == "__main__":
    main()
