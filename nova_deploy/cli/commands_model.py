"""Commands on models: info, convert-checkpoint, generate (PyTorch path)."""
import resource
import time

import click
from tqdm import tqdm

from nova_deploy.atomic_write import write_json_atomic
from nova_deploy.bounds import check_class_ids, check_top_k
from nova_deploy.checkpoint import (checkpoint_kind, convert_checkpoint, infer_var_config, matching_preset,
                                    read_state_dict)
from nova_deploy.cli.options import (CHECKPOINT_FILE, OUTPUT_FILE, SEED, draw_option, expect_sha256_option, model_options,
                                    runtime_options)
from nova_deploy.errors import CheckpointError, InvalidArgument
from nova_deploy.images import image_grid_png
from nova_deploy.nova.model_defaults import resolve_policy_text
from nova_deploy.nova.policy import parse_policy, valid_forms
from nova_deploy.nova.plot import plot_trace
from nova_deploy.model_source import resolve_models
from nova_deploy.generation.inputs import resolve_labels
from nova_deploy.request_checks import check_sampler_request
from nova_deploy.sampler import generate
from nova_deploy.sampling import SamplingParams


@click.command()
@click.argument("checkpoint", type=CHECKPOINT_FILE)
def info(checkpoint):
    """Preset, parameters, scales and tokens per scale of a VAR or VQVAE checkpoint."""
    state, meta = read_state_dict(checkpoint)
    kind = checkpoint_kind(state)
    n_params = sum(v.numel() for k, v in state.items() if v.is_floating_point())
    if kind == "var":
        cfg = infer_var_config(state, meta)
        click.echo(f"{checkpoint}: VAR, preset {matching_preset(cfg) or 'custom'}")
        click.echo(f"  depth {cfg.depth}, width {cfg.embed_dim}, heads {cfg.num_heads}, classes {cfg.num_classes}, "
                   f"shared AdaLN {cfg.shared_aln}, cosine attention {cfg.attn_l2_norm}")
        click.echo(f"  tensors {len(state)}, parameters+buffers {n_params:,}")
        click.echo(f"  scales {len(cfg.patch_nums)}: {', '.join(f'{p}x{p}' for p in cfg.patch_nums)}")
        click.echo(f"  tokens per scale {[p * p for p in cfg.patch_nums]}, total {sum(p * p for p in cfg.patch_nums)}")
    elif kind == "vqvae":
        # the scale schedule belongs to the VAR; a VQVAE file only says how many scales it tracked
        vocab, cvae = state["quantize.embedding.weight"].shape
        click.echo(f"{checkpoint}: VQVAE, vocab {vocab}, Cvae {cvae}, ch {state['encoder.conv_in.weight'].shape[0]}, "
                   f"scales {state['quantize.ema_vocab_hit_SV'].shape[0]}")
        click.echo(f"  tensors {len(state)}, parameters+buffers {n_params:,}")
    else:
        raise CheckpointError(f"{checkpoint}: neither a VAR nor a VQVAE checkpoint")


@click.command("convert-checkpoint")
@click.argument("src", type=CHECKPOINT_FILE)
@click.argument("dst", type=OUTPUT_FILE)
def convert_checkpoint_cmd(src, dst):
    """Convert an official .pth state dict to .safetensors (config stored in the metadata)."""
    if not dst.endswith(".safetensors"):
        raise InvalidArgument(f"output must end in .safetensors, got {dst}")
    kind, _ = convert_checkpoint(src, dst)
    click.echo(f"wrote {dst} ({kind.upper()})")


@click.command("generate")
@model_options
@click.option("--class", "classes", type=int, multiple=True, help="Class id of an image; repeat for several. "
              "Default: one image per class, up to 8.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--cfg", type=float, default=1.5, show_default=True, help="Classifier-free guidance at the last scale.")
@click.option("--top-k", type=int, default=0, show_default=True, help="0: no top-k filter; at most the vocabulary.")
@click.option("--top-p", type=float, default=0.0, show_default=True, help="0: no nucleus filter.")
@click.option("--more-smooth", is_flag=True, help="Gumbel-smoothed tokens (visual only).")
@draw_option
@click.option("--policy", "policy_text", default="none", show_default=True,
              help=f"Token pruning: {valid_forms()} (fixed: one ratio per scale); plain nova on a bundled model "
                   "runs the configuration its sweep chose.")
@click.option("--trace", "trace_path", type=OUTPUT_FILE, default=None,
              help="Write per-image decisions (entropy curve, activation, ratios, kept tokens, FLOPs) as JSON.")
@click.option("--plot", "plot_path", type=OUTPUT_FILE, default=None,
              help="Draw the entropy curves and scale ratios to a PNG.")
@runtime_options("Run an export directory (`nova-deploy export --out DIR`) with the runtime instead of the "
                 "PyTorch sampler.")
@expect_sha256_option
@click.option("--out", type=OUTPUT_FILE, default="grid.png", show_default=True)
def generate_cmd(var_path, vae_path, preset, model, classes, seed, cfg, top_k, top_p, more_smooth, draw, policy_text,
                 trace_path, plot_path, engines_dir, backend, device, threads, expect_sha256, out):
    """Generate images and write them as a PNG grid: on the PyTorch sampler, or with --engines on
    the runtime over exported graphs."""
    params = SamplingParams(cfg=cfg, top_k=top_k, top_p=top_p, more_smooth=more_smooth, draw=draw)
    policy = parse_policy(policy_text)
    if engines_dir is not None:
        if var_path or vae_path or preset or model:
            raise InvalidArgument("--engines runs the exported model; --model/--checkpoint/--vae/--preset do not "
                                  "apply to it")
        return _generate_on_runtime(engines_dir, backend, device, threads, classes, seed, params, policy,
                                    policy_text, trace_path, plot_path, out, expect_sha256)
    for name, value, default in (("--device", device, "cpu"), ("--threads", threads, None)):
        if value != default:
            raise InvalidArgument(f"{name} applies to the runtime (--engines DIR); the PyTorch sampler runs on the "
                                  f"CPU with torch's threads")
    if expect_sha256 is not None:
        raise InvalidArgument("--expect-sha256 pins the manifest of an export: give it with --engines")
    src = resolve_models(var_path, vae_path, preset, model=model)
    click.echo(f"model: {src.description}", err=True)
    policy, note = resolve_policy_text(policy_text, src.bundled)
    if note:
        click.echo(note, err=True)
    if not classes:
        classes = tuple(range(min(src.var.num_classes, 8)))
    check_class_ids(classes, src.var.num_classes, "--class")
    check_top_k(top_k, src.var.V, "--top-k")
    check_sampler_request(src.var, len(classes), list(classes), seed, params)  # before the progress bar starts
    labels = resolve_labels(src.var.num_classes, len(classes), list(classes), None, "cpu")
    K = len(src.var.patch_nums)
    t0 = time.perf_counter()
    with tqdm(total=K, desc="scales", unit="scale", leave=False) as bar:
        result = generate(src.var, B=len(classes), label_B=labels, g_seed=seed, params=params,
                          on_scale=lambda si: bar.update(1), policy=policy,
                          want_trace=bool(trace_path or plot_path))
    seconds = time.perf_counter() - t0
    _write_outputs(result.images, result.trace, policy_text, seed, classes, trace_path, plot_path, out)
    if policy.name != "none":
        t = result.trace[0] if result.trace else None
        if t:
            click.echo(f"policy {policy_text}: transformer FLOPs reduced {t['flop_reduction']:.2f}x", err=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    click.echo(f"wrote {out}: {len(classes)} image(s) {result.images.shape[-1]}px in {seconds:.2f} s, "
               f"peak RSS {peak_mb:.0f} MB")


def _write_outputs(images, trace, policy_text, seed, classes, trace_path, plot_path, out):
    image_grid_png(images, out)
    if trace_path:
        write_json_atomic(trace_path, {"policy": policy_text, "seed": seed, "classes": list(classes), "images": trace})
    if plot_path:
        plot_trace(trace, plot_path)


def _generate_on_runtime(engines_dir, backend, device, threads, classes, seed, params, policy, policy_text,
                         trace_path, plot_path, out, expect_sha256=None):
    from nova_deploy.runtime.pipeline import Pipeline

    t0 = time.perf_counter()
    with Pipeline.from_dir(engines_dir, backend=backend, device=device, threads=threads,
                           expect_sha256=expect_sha256) as pipe:
        click.echo(f"engines: {engines_dir} ({pipe.export.description}, {pipe.spec.precision}) on {pipe.backend.label} "
                   f"{pipe.device}, loaded in {time.perf_counter() - t0:.2f} s", err=True)
        if policy_text == "nova":
            policy = pipe.nova_policy
            if pipe.nova_note:
                click.echo(pipe.nova_note, err=True)
        if not classes:
            classes = tuple(range(min(pipe.spec.var.num_classes, 8, pipe.max_batch)))
        check_class_ids(classes, pipe.spec.var.num_classes, "--class")
        check_top_k(params.top_k, pipe.spec.vae.vocab_size, "--top-k")
        result = pipe.generate(list(classes), seed=seed, cfg=params.cfg, top_k=params.top_k, top_p=params.top_p,
                               more_smooth=params.more_smooth, draw=params.draw, policy=policy,
                               want_trace=bool(trace_path or plot_path or policy.name != "none"))
    _write_outputs(result.images.cpu(), result.trace, policy_text, seed, classes, trace_path, plot_path, out)
    if policy.name != "none" and result.trace:
        click.echo(f"policy {policy_text}: transformer FLOPs reduced {result.trace[0]['flop_reduction']:.2f}x", err=True)
    t = result.timing
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    click.echo(f"wrote {out}: {len(classes)} image(s) {result.images.shape[-1]}px in {t.total_s:.2f} s "
               f"({t.backend_s:.2f} s in {backend}, {t.outside_backend_s:.2f} s outside), peak RSS {peak_mb:.0f} MB")
