"""Write nova_deploy/assets/MODEL_CARD.md from the training run (logs, summary) and an eval JSON.

    python tools/write_model_card.py runs/ref eval.json
"""
import json
import sys
from pathlib import Path

from safetensors import safe_open

from nova_deploy.models.presets import get_preset

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


def main():
    run, eval_json = Path(sys.argv[1]), Path(sys.argv[2])
    summary = json.loads((run / "train_summary.json").read_text()) if (run / "train_summary.json").exists() else {}
    ev = json.loads(eval_json.read_text())
    preset = get_preset("nova-ref")
    var_f, vae_f = ASSETS / "var.safetensors", ASSETS / "vqvae.safetensors"
    rows = "\n".join(
        f"| {r['policy'].split(' ')[0]} | {r['flop_reduction']:.2f}x | {100 * r['classifier_accuracy']:.1f}% | "
        f"{r['fid_feat']:.2f} | {r['fid_feat_real_vs_real']:.2f} | "
        f"{'-' if r['psnr_vs_dense'] is None else format(r['psnr_vs_dense'], '.2f')} | "
        f"{'-' if r['ssim_vs_dense'] is None else format(r['ssim_vs_dense'], '.4f')} |"
        for r in ev["reports"])
    text = f"""# Model card: nova-ref (the bundled default model)

A class-conditional VAR in the official architecture and key layout, trained here on CPU on the
procedural shapes of `nova_deploy/data/shapes.py` (10 classes: {", ".join(__import__("nova_deploy.data", fromlist=["CLASS_NAMES"]).CLASS_NAMES)};
random colour, position, size, rotation and background; 64x64 pixels; generated from a seed, no downloads).

| part | configuration | parameters | file |
| --- | --- | --- | --- |
| VAR | depth {preset.var.depth}, width {preset.var.embed_dim}, {preset.var.num_heads} heads, cosine attention, per-block AdaLN, {preset.var.num_classes} classes | {n_params(var_f):,} | var.safetensors, {var_f.stat().st_size / 1e6:.1f} MB |
| VQVAE | vocab {preset.vae.vocab_size}, Cvae {preset.vae.z_channels}, ch {preset.vae.ch}, ch_mult {preset.vae.ch_mult} (8x), {preset.vae.num_res_blocks} res block per level, GroupNorm {preset.vae.norm_groups} groups, 4 shared Phi | {n_params(vae_f):,} | vqvae.safetensors, {vae_f.stat().st_size / 1e6:.1f} MB |

Scale schedule: {", ".join(f"{p}x{p}" for p in preset.var.patch_nums)} ({sum(p * p for p in preset.var.patch_nums)} tokens).

## Training (`nova-deploy train`, seed 0, one thread per stage, 2-core CPU)

1. VQVAE, {summary.get('vqvae_steps', '?')} steps of 16 images: the first 150 as a plain autoencoder, then
   multi-scale residual quantization with dead-code restarts; L1 + MSE + VQ loss.
   Last logged: {json.dumps(last(run / 'vqvae_log.jsonl'))}
2. {summary.get('n_encode', '?')} training images encoded once into token pyramids.
3. VAR, {summary.get('var_steps', '?')} steps of 32 pyramids, teacher forcing with the block-causal mask, class
   dropout 0.1 (so CFG works), AdamW, cosine LR.
   Last logged: {json.dumps(last(run / 'var_log.jsonl'))}
4. Decoder refinement, {summary.get('decoder_steps', '?')} steps: only post_quant_conv + decoder, on frozen tokens.
   Last logged: {json.dumps(last(run / 'decoder_log.jsonl'))}

Stage times (s): {json.dumps({k: v for k, v in summary.items() if k.endswith('_s')})}.
The shipped run was interrupted and resumed several times while other work shared the machine,
so its wall times are upper bounds; `nova-deploy train` reproduces the recipe from the seed.

## Quality (`{ev.get('command', 'nova-deploy eval')}`, {ev['reports'][0]['n_samples']} samples per policy)

| policy | transformer FLOP reduction | classifier accuracy | FID_feat | FID_feat real vs real | PSNR vs dense | SSIM vs dense |
| --- | --- | --- | --- | --- | --- | --- |
{rows}

Mean token entropy per scale (dense): {", ".join(f"{e:.3f}" for e in ev["reports"][0]["entropy_per_scale"])}.
"""
    (ASSETS / "MODEL_CARD.md").write_text(text)
    print(f"wrote {ASSETS / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
