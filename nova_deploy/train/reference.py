"""The whole training of the shipped reference model (`nova-deploy train`): VQVAE, encode, VAR.

Every stage resumes from its last checkpoint in out_dir, so an interrupted run continues where
it stopped; with the same seed the result is the same model. The summary names the stages found
already complete, whose times here measure nothing (tools/write_model_card.py takes them from the
run that computed them).
"""
import json
import time
from pathlib import Path

import torch

from nova_deploy.checkpoint import save_safetensors
from nova_deploy.data import data_fingerprint
from nova_deploy.models.build import build_vqvae
from nova_deploy.models.presets import get_preset
from nova_deploy.train import recipe
from nova_deploy.train.loop import training_state_complete
from nova_deploy.train.var import VAR_STATE_FILE, encode_dataset, train_var
from nova_deploy.train.vqvae import DECODER_STATE_FILE, VQVAE_STATE_FILE, refine_decoder, train_vqvae

STAGES = ("vqvae", "encode", "var", "decoder")  # in run order; the summary's "<stage>_s" keys time each
TOKENS_FILE = "tokens.pt"


def train_reference(out_dir: Path, preset_name: str = "nova-ref", seed: int = 0,
                    vqvae_steps: int = recipe.VQVAE_STEPS, var_steps: int = recipe.VAR_STEPS,
                    n_encode: int = recipe.ENCODE_IMAGES, decoder_steps: int = recipe.DECODER_STEPS,
                    threads: int = recipe.THREADS, var_lr: float = recipe.VAR_LR) -> dict:
    torch.set_num_threads(threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    preset = get_preset(preset_name)
    timings = {}
    complete = {"vqvae": training_state_complete(out_dir / VQVAE_STATE_FILE, vqvae_steps),
                "encode": (out_dir / TOKENS_FILE).exists(),
                "var": training_state_complete(out_dir / VAR_STATE_FILE, var_steps),
                "decoder": training_state_complete(out_dir / DECODER_STATE_FILE, decoder_steps)}

    t = time.time()
    state_path = train_vqvae(preset.vae, out_dir, seed=seed, steps=vqvae_steps)
    vae = build_vqvae(preset.vae)
    vae.load_state_dict(torch.load(state_path, weights_only=True)["model"])
    save_safetensors(vae, preset.vae, "vqvae", out_dir / "vqvae.safetensors")
    timings["vqvae_s"] = round(time.time() - t, 1)

    t = time.time()
    tokens = encode_dataset(vae, out_dir / TOKENS_FILE, seed=seed + 1000, n_images=n_encode)
    timings["encode_s"] = round(time.time() - t, 1)

    t = time.time()
    var = train_var(preset.var, vae, tokens, out_dir, seed=seed, steps=var_steps, lr=var_lr)
    save_safetensors(var, preset.var, "var", out_dir / "var.safetensors")
    timings["var_s"] = round(time.time() - t, 1)

    # the decoder refinement leaves the tokens unchanged, so it may run after (or beside) the VAR
    t = time.time()
    dec_state = refine_decoder(preset.vae, state_path, out_dir, seed=seed, steps=decoder_steps)
    vae.load_state_dict(torch.load(dec_state, weights_only=True)["model"])
    save_safetensors(vae, preset.vae, "vqvae", out_dir / "vqvae.safetensors")
    timings["decoder_s"] = round(time.time() - t, 1)

    summary = {"preset": preset_name, "seed": seed, "vqvae_steps": vqvae_steps, "var_steps": var_steps,
               "var_lr": var_lr, "n_encode": n_encode, "decoder_steps": decoder_steps, "threads": threads,
               "data_fingerprint": data_fingerprint(preset.vae.image_size), **timings,
               "stages_found_complete": [st for st in STAGES if complete[st]]}
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=1))
    return summary
