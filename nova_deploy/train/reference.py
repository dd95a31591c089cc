"""The whole training of the shipped reference model (`nova-deploy train`): VQVAE, encode, VAR.

Every stage resumes from its last checkpoint in out_dir, so an interrupted run continues where
it stopped; with the same seed and thread count the result is the same model (the VAR stage runs on
torch's deterministic kernels: without them its compiled backward sums in a thread-dependent
order). With two threads or more, the decoder refinement runs in a second process beside the
encoding and the first VAR steps, each side on half the threads: it needs only the VQVAE state,
and on a 2-core CPU two one-thread jobs get more work done than one two-thread job (1.06x to 1.33x
on the machines measured; tools/model_card_notes.md). From
step var_all_threads_from on, the VAR runs on every thread. The summary names the stages found
already complete, whose times here measure nothing (tools/write_model_card.py takes them from the
run that computed them).
"""
import multiprocessing
import os
import platform
import time
from pathlib import Path

import torch

from nova_deploy.atomic_write import ensure_dir, write_json_atomic
from nova_deploy.checkpoint import save_safetensors
from nova_deploy.data import data_fingerprint
from nova_deploy.machine import cpu_name
from nova_deploy.models.build import build_vqvae
from nova_deploy.models.presets import get_preset
from nova_deploy.threads import torch_threads
from nova_deploy.train.recipe import Recipe
from nova_deploy.train.loop import training_state_complete
from nova_deploy.train.var import VAR_STATE_FILE, encode_dataset, train_var
from nova_deploy.train.vqvae import DECODER_STATE_FILE, VQVAE_STATE_FILE, refine_decoder, train_vqvae

STAGES = ("vqvae", "encode", "var", "decoder")  # in start order; the summary's "<stage>_s" keys time each
BESIDE_DECODER = ("encode", "var")  # the stages the decoder refinement runs beside, given two threads or more
TOKENS_FILE = "tokens.pt"


def run_time_s(stage_s: dict, decoder_beside: bool) -> float:
    """The run's length from its stage times: a decoder stage run beside encode and VAR adds only
    what it took beyond them."""
    beside = sum(stage_s[f"{st}_s"] for st in BESIDE_DECODER) if decoder_beside else 0.0
    rest = sum(v for k, v in stage_s.items() if k != "decoder_s")
    return rest + max(0.0, stage_s.get("decoder_s", 0.0) - beside)


def machine_description() -> dict:
    """What the run's times depend on: the recipe's budget is met, or not, on one CPU."""
    return {"cpu": cpu_name(fallback=platform.processor() or platform.machine()), "cpu_count": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}


def _refine_decoder_process(vae_cfg, state_path: Path, out_dir: Path, seed: int, steps: int, lr: float,
                            threads: int, seconds) -> None:
    torch.set_num_threads(threads)
    t = time.time()
    refine_decoder(vae_cfg, state_path, out_dir, seed=seed, steps=steps, lr=lr)
    seconds.value = round(time.time() - t, 1)


def train_reference(out_dir: Path, recipe: Recipe, seed: int = 0) -> dict:
    """Trains recipe.preset's model by the recipe on recipe.threads torch threads; the caller's
    thread count is restored after it."""
    r, threads = recipe, recipe.threads
    with torch_threads(threads):
        ensure_dir(out_dir)
        preset = get_preset(r.preset)
        timings = {}
        complete = {"vqvae": training_state_complete(out_dir / VQVAE_STATE_FILE, r.vqvae_steps),
                    "encode": (out_dir / TOKENS_FILE).exists(),
                    "var": training_state_complete(out_dir / VAR_STATE_FILE, r.var_steps),
                    "decoder": training_state_complete(out_dir / DECODER_STATE_FILE, r.decoder_steps)}

        t = time.time()
        state_path = train_vqvae(preset.vae, out_dir, seed=seed, steps=r.vqvae_steps)
        vae = build_vqvae(preset.vae)
        vae.load_state_dict(torch.load(state_path, weights_only=True)["model"])
        save_safetensors(vae, preset.vae, "vqvae", out_dir / "vqvae.safetensors")
        timings["vqvae_s"] = round(time.time() - t, 1)

        decoder_beside = threads >= 2
        if decoder_beside:
            ctx = multiprocessing.get_context("spawn")  # a fork would share torch's thread pools
            decoder_seconds = ctx.Value("d", -1.0)
            # daemon: stopped with this process; its last checkpoint is what a rerun resumes
            decoder = ctx.Process(target=_refine_decoder_process, name="decoder-refinement", daemon=True,
                                  args=(preset.vae, state_path, out_dir, seed, r.decoder_steps, r.decoder_lr,
                                        threads // 2, decoder_seconds))
            decoder.start()
            torch.set_num_threads(threads - threads // 2)
        try:
            t = time.time()
            tokens = encode_dataset(vae, out_dir / TOKENS_FILE, seed=seed + 1000, n_images=r.encode_images)
            timings["encode_s"] = round(time.time() - t, 1)

            t = time.time()
            var_threads = torch.get_num_threads()
            var = train_var(preset.var, vae, tokens, out_dir, seed=seed, steps=r.var_steps, batch=r.var_batch,
                            lr=r.var_lr, compile_step=r.var_compile, attention=r.var_attention,
                            deterministic=r.var_deterministic, prefix_scales=r.var_prefix_scales,
                            full_every=r.var_full_every, bf16_autocast=r.var_bf16_autocast,
                            threads_at_step=lambda step: var_threads if step < r.var_all_threads_from else threads)
            save_safetensors(var, preset.var, "var", out_dir / "var.safetensors")
            timings["var_s"] = round(time.time() - t, 1)
        except BaseException:
            if decoder_beside:
                decoder.terminate()
            raise

        # the decoder refinement leaves the tokens unchanged, so it may run beside (or after) the VAR
        if decoder_beside:
            decoder.join()
            if decoder.exitcode != 0:
                raise RuntimeError(f"the decoder refinement (a second process) stopped with exit code "
                                   f"{decoder.exitcode}; its error is printed above; the same command resumes "
                                   "every stage")
            timings["decoder_s"] = decoder_seconds.value
        else:
            t = time.time()
            refine_decoder(preset.vae, state_path, out_dir, seed=seed, steps=r.decoder_steps, lr=r.decoder_lr)
            timings["decoder_s"] = round(time.time() - t, 1)
        dec_state = out_dir / DECODER_STATE_FILE
        vae.load_state_dict(torch.load(dec_state, weights_only=True)["model"])
        save_safetensors(vae, preset.vae, "vqvae", out_dir / "vqvae.safetensors")

        summary = {"preset": r.preset, "seed": seed, "vqvae_steps": r.vqvae_steps, "var_steps": r.var_steps,
                   "var_lr": r.var_lr, "var_batch": r.var_batch, "var_attention": r.var_attention,
                   "n_encode": r.encode_images, "decoder_steps": r.decoder_steps,
                   "decoder_lr": r.decoder_lr, "threads": threads, "var_compiled": r.var_compile,
                   "var_all_threads_from": r.var_all_threads_from, "var_deterministic": r.var_deterministic,
                   "var_prefix_scales": r.var_prefix_scales, "var_full_every": r.var_full_every,
                   "var_bf16_autocast": r.var_bf16_autocast,
                   "decoder_beside": list(BESIDE_DECODER) if decoder_beside else [],
                   "data_fingerprint": data_fingerprint(preset.vae.image_size), **timings,
                   "stages_found_complete": [st for st in STAGES if complete[st]],
                   "run_s": round(run_time_s(timings, decoder_beside), 1), "machine": machine_description()}
        write_json_atomic(out_dir / "train_summary.json", summary)
        return summary
