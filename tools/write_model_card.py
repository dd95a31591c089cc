"""Write a bundled model's MODEL_CARD.md from its training run (logs, summary) and an eval JSON.

    python tools/write_model_card.py runs/nova-ref eval.json [runs/earlier] [--model nova-ref-16]

The card goes beside the model's weights (nova_deploy/assets/ for nova-ref, nova_deploy/assets/MODEL/
for the others), followed by the model's notes (tools/model_card_notes.md for nova-ref,
tools/model_card_notes_MODEL.md for the others).

runs/earlier: a completed run whose stages the run resumed complete (copied in, so `nova-deploy
train` skipped them, and its train_summary.json lists them as stages_found_complete); their times
are taken from it, and it must have used the same recipe for those stages.
"""
import argparse
import json
import sys
from pathlib import Path

from safetensors import safe_open

from nova_deploy.atomic_write import write_text_atomic
from nova_deploy.data import CLASS_NAMES, data_fingerprint
from nova_deploy.errors import CheckpointError
from nova_deploy.eval.classifier import load_classifier
from nova_deploy.model_source import BUNDLED_MODELS, DEFAULT_MODEL
from nova_deploy.models.presets import get_preset
from nova_deploy.train.reference import STAGES, run_time_s

ASSETS = Path(__file__).resolve().parents[1] / "nova_deploy" / "assets"


def last(path: Path) -> dict:
    lines = path.read_text().strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def n_params(path: Path) -> int:
    with safe_open(str(path), framework="pt") as f:
        return sum(f.get_slice(k).get_shape().numel() if hasattr(f.get_slice(k).get_shape(), "numel")
                   else _prod(f.get_slice(k).get_shape()) for k in f.keys())


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


def refuse(message: str):
    """One line on stderr and exit 2, as the CLI does on bad input."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# what each stage's result depends on, beside the seed, thread count and data every stage shares
STAGE_RECIPE = {"vqvae": ("vqvae_steps",), "encode": ("vqvae_steps", "n_encode"),
                "var": ("vqvae_steps", "n_encode", "var_steps", "var_lr", "var_compiled", "var_all_threads_from",
                        "var_deterministic", "var_prefix_scales", "var_full_every", "var_bf16_autocast"),
                "decoder": ("vqvae_steps", "decoder_steps", "decoder_lr")}


def stage_times(summary: dict, earlier) -> tuple:
    """(seconds per stage, where they were measured). A run that resumed stages found complete
    (copied in from `earlier`, so `nova-deploy train` skipped them) takes their times from there;
    `earlier` must have used the same recipe for them."""
    stage_s = {f"{st}_s": summary[f"{st}_s"] for st in STAGES if f"{st}_s" in summary}
    resumed = summary.get("stages_found_complete", [])
    if earlier is None:
        if resumed:
            refuse(f"the run resumed the stages {', '.join(resumed)} complete: name the run that computed them "
                   "as the third argument, so that their times are measured ones")
        return stage_s, "one uninterrupted run"
    if not resumed:
        refuse(f"the run resumed no stage from {earlier} (train_summary.json lists no stages_found_complete)")
    before = json.loads((Path(earlier) / "train_summary.json").read_text())
    keys = ["seed", "threads", "data_fingerprint"] + [k for st in resumed for k in STAGE_RECIPE[st]]
    differ = sorted({k for k in keys if before.get(k) != summary.get(k)})
    if differ:
        refuse(f"{earlier} used another recipe for the resumed stages ({', '.join(differ)} differ)")
    stage_s.update({f"{st}_s": before[f"{st}_s"] for st in resumed})
    timed = [st for st in STAGES if st not in resumed]
    return stage_s, (f"{', '.join(timed) or 'no'} stage(s) timed in this run; {', '.join(resumed)}, whose recipe "
                     f"did not change, resumed complete from run `{Path(earlier).name}` and timed there")


def n_threads(n: int) -> str:
    return "one thread" if n == 1 else f"{n} threads"


def var_and_decoder_threads(summary: dict, beside: bool) -> tuple:
    """The card's clauses on how the VAR step ran and where the decoder stage ran, as
    train_reference splits the threads: the decoder process gets half, the VAR the rest until
    var_all_threads_from, then all."""
    var_how = "; the step compiled with torch.compile" if summary.get("var_compiled") else ""
    if summary.get("var_prefix_scales"):
        var_how += (f"; every {summary['var_full_every']}th step on the whole pyramid, the others on its first "
                    f"{summary['var_prefix_scales']} scales")
    if summary.get("var_bf16_autocast"):
        var_how += "; the forward under bfloat16 autocast (weights, optimizer and loss in float32)"
    if summary.get("var_deterministic"):
        var_how += ", on torch's deterministic kernels"
    if not beside:
        return var_how, ""
    threads, switch = summary["threads"], summary.get("var_all_threads_from")
    var_side, decoder_side = threads - threads // 2, threads // 2
    if switch is not None:
        var_how += f"; {n_threads(var_side)} up to step {switch}, then {threads}"
    split = (f"each side on {n_threads(var_side)}" if var_side == decoder_side
             else f"{n_threads(decoder_side)} against the VAR's {n_threads(var_side)}")
    beside_what = "the VAR" if switch is None else f"the VAR's first {switch} steps"
    return var_how, f"; in a second process beside the encoding and {beside_what}, {split}"


def machine_phrase(summary: dict) -> str:
    """The CPU the stage times were measured on; a summary without a machine record says only "2-core CPU"."""
    m = summary.get("machine")
    if m is None:
        return "2-core CPU"
    return f"{m['cpu_count']}-core {m['cpu']}, torch {m['torch']} on {m['cpu_capability']} kernels"


QUALITY_HEAD, QUALITY_END = "## Quality (", "Mean token entropy per scale (dense): "


def quality_section(ev: dict) -> str:
    """The card's quality section, from its heading to the entropy line, from an eval JSON."""
    rows = "\n".join(
        f"| {r['policy'].split(' ')[0]} | {r['flop_reduction']:.2f}x | {100 * r['classifier_accuracy']:.1f}% | "
        f"{r['fid_feat']:.2f} | {r['fid_feat_real_vs_real']:.2f} | "
        f"{'-' if r['psnr_vs_dense'] is None else format(r['psnr_vs_dense'], '.2f')} | "
        f"{'-' if r['ssim_vs_dense'] is None else format(r['ssim_vs_dense'], '.4f')} |"
        for r in ev["reports"])
    per_class = ""
    if all("per_class_accuracy" in r for r in ev["reports"]):
        per_class = ("\nAccuracy per requested class:\n\n| policy | " + " | ".join(CLASS_NAMES) + " |\n| --- |"
                     + " ---: |" * len(CLASS_NAMES) + "\n" + "\n".join(
                         f"| {r['policy'].split(' ')[0]} | " + " | ".join(f"{100 * a:.0f}%" for a in r["per_class_accuracy"])
                         + " |" for r in ev["reports"]) + "\n")
    configs = "".join(f"\n- `{r['policy'].split(' ')[0]}` ran {r['policy'].split(' ', 1)[1]}" for r in ev["reports"]
                      if " " in r["policy"])
    sampling = ev["reports"][0].get("sampling", {})
    opts = ev.get("options")
    command = "nova-deploy eval" if opts is None else "nova-deploy eval " + " ".join(
        [f"--policy {p}" for p in opts["policy"]]
        + [f"--{k.replace('_', '-')} {v}" for k, v in opts.items() if k != "policy" and v is not None])
    return f"""## Quality (`{command}`, {ev['reports'][0]['n_samples']} samples per policy, sampling {json.dumps(sampling)})

| policy | transformer FLOP reduction | classifier accuracy | FID_feat | FID_feat real vs real | PSNR vs dense | SSIM vs dense |
| --- | --- | --- | --- | --- | --- | --- |
{rows}
{configs}
{per_class}
Mean token entropy per scale (dense): {", ".join(f"{e:.3f}" for e in ev["reports"][0]["entropy_per_scale"])}.
"""


def model_dir(model: str) -> Path:
    """Where the model's weights and card are in this repository (BUNDLED_MODELS names the installed
    package's directories, this tool writes the repository's)."""
    return ASSETS / BUNDLED_MODELS[model].directory.relative_to(BUNDLED_MODELS[DEFAULT_MODEL].directory)


def replace_quality(model: str, ev: dict) -> None:
    """The card with its quality section re-rendered from ev, the rest unchanged."""
    card = model_dir(model) / "MODEL_CARD.md"
    text = card.read_text()
    start = text.index(QUALITY_HEAD)
    end = text.index("\n", text.index(QUALITY_END, start)) + 1
    write_text_atomic(card, text[:start] + quality_section(ev) + text[end:])
    print(f"wrote {card} (quality section)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("eval_json", type=Path)
    ap.add_argument("earlier", type=Path, nargs="?", default=None)
    ap.add_argument("--model", default=DEFAULT_MODEL, choices=list(BUNDLED_MODELS))
    ap.add_argument("--quality-only", action="store_true",
                    help="replace only the card's quality section with the eval JSON's (a re-measured eval of "
                         "the same weights; RUN is not read)")
    args = ap.parse_args()
    if args.quality_only:
        return replace_quality(args.model, json.loads(args.eval_json.read_text()))
    run, eval_json, model = args.run, args.eval_json, args.model
    directory = model_dir(model)
    summary = json.loads((run / "train_summary.json").read_text()) if (run / "train_summary.json").exists() else {}
    ev = json.loads(eval_json.read_text())
    # both files must name their data: ones written before they recorded it cannot be matched to it
    preset = get_preset(model)
    installed_data = data_fingerprint(preset.vae.image_size)
    if ev.get("data_fingerprint") != installed_data:
        refuse(f"{eval_json} was measured on data {ev.get('data_fingerprint', '(not recorded)')} (classes "
               f"{ev.get('classes', '(not recorded)')}); the installed nova_deploy/data/shapes.py draws {installed_data} "
               f"({list(CLASS_NAMES)}): run `nova-deploy eval --json` again")
    if summary.get("data_fingerprint") != installed_data:
        refuse(f"{run} was trained on data {summary.get('data_fingerprint', '(not recorded)')}; the installed "
               f"nova_deploy/data/shapes.py draws {installed_data}")
    var_f, vae_f, clf_f = directory / "var.safetensors", directory / "vqvae.safetensors", ASSETS / "classifier.safetensors"
    try:
        load_classifier(clf_f)  # refuses weights trained on other images than installed
    except CheckpointError as e:
        refuse(str(e))
    clf_card = json.loads((ASSETS / "classifier.json").read_text())
    rec = ev.get("vqvae_reconstruction")
    rec_line = ("not in this eval JSON" if rec is None else
                f"PSNR {rec['psnr_db']:.2f} dB, SSIM {rec['ssim']:.4f}; the classifier recognises "
                f"{100 * rec['classifier_accuracy_reconstructed']:.1f}% of the reconstructions "
                f"({100 * rec['classifier_accuracy_real']:.1f}% of the real images)"
                + ("" if rec.get("fid_feat") is None else
                   f"; FID_feat of the reconstructions {rec['fid_feat']:.2f}: what a sampler reproducing real "
                   "token maps exactly would score through this decoder, the level samples can reach"))
    n_rec = "?" if rec is None else rec["n_images"]
    seed_rec = "?" if rec is None else rec["seed"]
    stage_s, provenance = stage_times(summary, args.earlier)
    # stages resumed from another run ran there, not beside this run's VAR
    beside = bool(summary.get("decoder_beside")) and not summary.get("stages_found_complete")
    total_min = run_time_s(stage_s, beside) / 60
    var_how, decoder_how = var_and_decoder_threads(summary, beside)
    size = preset.vae.image_size
    down = size // preset.vae.v_patch_nums[-1]
    role = "the bundled default model" if model == DEFAULT_MODEL else "a bundled model: `--model " + model + "`"
    text = f"""# Model card: {model} ({role})

A class-conditional VAR in the official architecture and key layout, trained here on CPU on the
procedural shapes of `nova_deploy/data/shapes.py` (10 classes: {", ".join(CLASS_NAMES)};
random colour, position, size and background, each class in its canonical orientation turned by a random
-15 to +15 degrees; {size}x{size} pixels; generated from a seed, no downloads).

| part | configuration | parameters | file |
| --- | --- | --- | --- |
| VAR | depth {preset.var.depth}, width {preset.var.embed_dim}, {preset.var.num_heads} heads, cosine attention, per-block AdaLN, {preset.var.num_classes} classes | {n_params(var_f):,} | var.safetensors, {var_f.stat().st_size / 1e6:.1f} MB |
| VQVAE | vocab {preset.vae.vocab_size}, Cvae {preset.vae.z_channels}, ch {preset.vae.ch}, ch_mult {preset.vae.ch_mult} ({down}x), {preset.vae.num_res_blocks} res block per level, GroupNorm {preset.vae.norm_groups} groups, 4 shared Phi | {n_params(vae_f):,} | vqvae.safetensors, {vae_f.stat().st_size / 1e6:.1f} MB |
| classifier (for `eval` only) | 4 conv blocks {list(clf_card["config"]["widths"])}, {clf_card["steps"]} steps of {clf_card["batch"]} | - | classifier.safetensors, {clf_f.stat().st_size / 1e6:.1f} MB; held-out accuracy {100 * clf_card["heldout"]["accuracy"]:.1f}% |

Scale schedule: {", ".join(f"{p}x{p}" for p in preset.var.patch_nums)} ({sum(p * p for p in preset.var.patch_nums)} tokens).

## Training (`nova-deploy train`, seed {summary.get('seed', '?')}, {summary.get('threads', '?')} threads, {machine_phrase(summary)})

1. VQVAE, {summary.get('vqvae_steps', '?')} steps of 16 images: the first 150 as a plain autoencoder, then
   multi-scale residual quantization with dead-code restarts; L1 + MSE + VQ loss, Adam, peak LR 3e-4, cosine.
   Last logged: {json.dumps(last(run / 'vqvae_log.jsonl'))}
2. {summary.get('n_encode', '?')} training images encoded once into token pyramids.
3. VAR, {summary.get('var_steps', '?')} steps of {summary.get('var_batch', 32)} pyramids, teacher forcing with the block-causal mask, class
   dropout 0.1 (so CFG works), AdamW, peak LR {summary.get('var_lr', '?')}, cosine, {summary.get('var_attention', 'math')} attention kernel{var_how}.
   Last logged: {json.dumps(last(run / 'var_log.jsonl'))}
4. Decoder refinement, {summary.get('decoder_steps', '?')} steps of 16 images, peak LR {summary.get('decoder_lr', 3e-4)}: only post_quant_conv + decoder, on frozen tokens{
   decoder_how}.
   Last logged: {json.dumps(last(run / 'decoder_log.jsonl'))}

Stage times (s): {json.dumps(stage_s)}: {total_min:.1f} minutes in all{
" (the decoder stage counted only where it outlasted the encoding and the VAR)" if beside else ""} ({provenance}).
The classifier was trained separately (`nova-deploy train-classifier --threads {clf_card["torch_threads"]}`, {clf_card["train_seconds"]} s).

## Reconstruction ({n_rec} held-out images, data seed {seed_rec})

VQVAE: {rec_line}. A VAR sampled through this VQVAE cannot score above that accuracy.

{quality_section(ev)}"""
    tools = ASSETS.parent.parent / "tools"
    notes = tools / ("model_card_notes.md" if model == DEFAULT_MODEL else f"model_card_notes_{model}.md")
    if notes.exists():
        text += "\n" + notes.read_text()
    write_text_atomic(directory / "MODEL_CARD.md", text)
    print(f"wrote {directory / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
