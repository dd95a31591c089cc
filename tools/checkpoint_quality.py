"""Dense quality of a training run's latest VAR checkpoint, while the run goes on (not the final
model: the LR schedule has not ended), through the run's decoder-refined VQVAE.

    python tools/checkpoint_quality.py runs/nova-ref-16 --preset nova-ref-16 --samples 300
prints the checkpoint's step, classifier accuracy, FID_feat beside real vs real, and the entropy per
scale, as JSON. One thread, so that the run beside it keeps the other.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

from nova_deploy.errors import InvalidArgument
from nova_deploy.eval.evaluate import EvalCache, evaluate
from nova_deploy.models.build import build_var, build_vqvae
from nova_deploy.models.presets import get_preset
from nova_deploy.nova.policy import parse_policy
from nova_deploy.sampling import SamplingParams
from nova_deploy.train.var import VAR_STATE_FILE
from nova_deploy.train.vqvae import DECODER_STATE_FILE, VQVAE_STATE_FILE


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--preset", required=True)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--cfg", type=float, default=1.5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    preset = get_preset(args.preset)
    vae = build_vqvae(preset.vae)
    vae_state = args.run / DECODER_STATE_FILE if (args.run / DECODER_STATE_FILE).exists() else args.run / VQVAE_STATE_FILE
    vae.load_state_dict(torch.load(vae_state, weights_only=True)["model"])
    state = torch.load(args.run / VAR_STATE_FILE, weights_only=True)
    var = build_var(preset.var, vae)
    var.load_state_dict(state["model"])
    t0 = time.perf_counter()
    report = evaluate(var.eval(), vae.eval(), parse_policy("none"), n_samples=args.samples, batch=50, seed=0,
                      params=SamplingParams(cfg=args.cfg), cache=EvalCache()).to_dict()
    keep = ("classifier_accuracy", "fid_feat", "fid_feat_real_vs_real", "entropy_per_scale")
    print(json.dumps({"step": int(state["step"]), "of": int(state["total_steps"]), "vqvae": vae_state.name,
                      **{k: report[k] for k in keep}, "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    try:
        main()
    except (InvalidArgument, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
