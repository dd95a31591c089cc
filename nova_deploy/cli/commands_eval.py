"""Commands on quality: eval, train (the reference model) and train-classifier."""
import shutil
from dataclasses import replace
import time
from contextlib import ExitStack
from pathlib import Path

import click
import torch
from tqdm import tqdm

from nova_deploy.bounds import check_top_k
from nova_deploy.cli.options import OUTPUT_FILE, SEED, THREADS, draw_option, model_options, runtime_options, threads_help
from nova_deploy.errors import InvalidArgument
from nova_deploy.eval.classifier import load_classifier
from nova_deploy.eval.sources import SamplerSource
from nova_deploy.eval.evaluate import EvalCache, check_model_fits_classifier, evaluate, min_samples_for_fid
from nova_deploy.eval.reconstruction import format_reconstruction, reconstruction_report
from nova_deploy.eval.report import eval_png, eval_record, format_per_class, format_table
from nova_deploy.atomic_write import write_json_atomic
from nova_deploy.model_source import resolve_models
from nova_deploy.nova.model_defaults import resolve_policy_text
from nova_deploy.nova.policy import parse_policy, valid_forms
from nova_deploy.sampling import SamplingParams
from nova_deploy.train import recipe


def _writable_dir_for(path: str) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise InvalidArgument(f"cannot write {path}: directory {parent} does not exist")
    probe = parent / f".nova-write-probe-{time.time_ns()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError:
        raise InvalidArgument(f"cannot write {path}: directory {parent} is not writable") from None


@click.command("eval")
@model_options
@click.option("--policy", "policies", multiple=True, default=("none",), show_default=True,
              help=f"Policy to evaluate (repeatable): {valid_forms()}; plain nova on a bundled model runs the "
                   "configuration its sweep chose.")
@click.option("--samples", type=int, default=1000, show_default=True, help="Generated (and real) images per policy.")
@click.option("--batch", type=int, default=50, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--cfg", type=float, default=1.5, show_default=True)
@click.option("--top-k", type=int, default=0, show_default=True)
@click.option("--top-p", type=float, default=0.0, show_default=True)
@draw_option
@click.option("--json", "json_path", type=OUTPUT_FILE, default="eval.json", show_default=True)
@click.option("--png", "png_path", type=OUTPUT_FILE, default="eval.png", show_default=True)
@runtime_options("Score an export directory run by the runtime (at its precision, on --backend) instead of "
                 "the PyTorch sampler; fidelity is then measured against the sampler's dense fp32 images.")
def eval_cmd(var_path, vae_path, preset, model, policies, samples, batch, seed, cfg, top_k, top_p, draw, json_path, png_path,
             engines_dir, backend, device, threads):
    """Quality of generation: classifier accuracy, FID_feat (beside real-vs-real), fidelity to dense
    generation (token agreement, PSNR, SSIM), the entropy curve, and the VQVAE's reconstruction of
    real images (the ceiling of any sampler). With --engines, of an export on a runtime backend."""
    params = SamplingParams(cfg=cfg, top_k=top_k, top_p=top_p, draw=draw)
    parsed = [parse_policy(p) for p in policies]
    if samples < min_samples_for_fid():
        raise InvalidArgument(f"--samples {samples} is too few for a stable Fréchet distance: "
                              f"use at least {min_samples_for_fid()} (1000 recommended)")
    if batch < 1:
        raise InvalidArgument(f"--batch must be >= 1, got {batch}")
    for path in (json_path, png_path):
        _writable_dir_for(path)
    with ExitStack() as stack:
        if engines_dir is None:
            for name, value, default in (("--device", device, "cpu"), ("--threads", threads, None)):
                if value != default:
                    raise InvalidArgument(f"{name} applies to an export's runtime (--engines DIR)")
            src = resolve_models(var_path, vae_path, preset, model=model)
            var, vae, description, source, bundled = src.var, src.vae, src.description, None, src.bundled
        else:
            if var_path or vae_path or preset or model:
                raise InvalidArgument("--engines scores the exported model; --model/--checkpoint/--vae/--preset do "
                                      "not apply")
            var, vae, description, source = _export_source(stack, engines_dir, backend, device, threads, top_k)
            bundled = source.pipe.bundled_model
        check_model_fits_classifier(var, vae)
        click.echo(f"model: {description}", err=True)
        resolved = [resolve_policy_text(p, bundled) for p in policies]  # `nova`: the model's measured default
        for note in dict.fromkeys(note for _, note in resolved if note):
            click.echo(note, err=True)
        parsed = [policy for policy, _ in resolved]
        reports, cache, clf = [], EvalCache(), load_classifier()
        t0 = time.perf_counter()
        for policy in parsed:
            policy.validate_for(len(var.patch_nums), var.depth)
            with tqdm(total=samples, desc=f"eval {policy.name}", unit="img", leave=False) as bar:
                reports.append(evaluate(var, vae, policy, n_samples=samples, batch=batch, seed=seed, params=params,
                                        progress=bar.update, cache=cache, clf=clf, source=source))
        grid = _grid(source or SamplerSource(var), seed, params, parsed[0])
    click.echo(format_table(reports))
    click.echo(format_per_class(reports))
    recon = reconstruction_report(vae, clf, n_images=samples,
                                  fid_against=cache.real_feature_sets(clf, samples, batch)[0])
    click.echo(format_reconstruction(recon))
    options = {"policy": list(policies), "model": model, "samples": samples, "batch": batch, "seed": seed,
               "cfg": cfg, "top_k": top_k, "top_p": top_p, "engines": engines_dir,
               "backend": backend if engines_dir else None}
    write_json_atomic(json_path, eval_record(description, time.perf_counter() - t0, options, recon.to_dict(),
                                             reports))
    eval_png(grid, reports, png_path)
    click.echo(f"wrote {json_path} and {png_path}", err=True)


def _grid(source, seed: int, params: SamplingParams, policy, n: int = 20) -> torch.Tensor:
    """n images, classes cycled, in the source's batch size (the first batch's seed is seed)."""
    step = min(n, source.max_batch or n)
    labels = torch.arange(n) % 10
    return torch.cat([source.generate(labels[i:i + step], seed + i, params, policy).images for i in range(0, n, step)])


def _export_source(stack: ExitStack, engines_dir, backend, device, threads, top_k):
    """(var, vae, description, image source) of an export: the runtime on the export, and the
    model it was exported from (the fp32 reference its images are compared with)."""
    from nova_deploy.runtime.backends.torch_backend import load_source_models
    from nova_deploy.runtime.eval_source import PipelineSource
    from nova_deploy.runtime.pipeline import Pipeline

    pipe = stack.enter_context(Pipeline.from_dir(engines_dir, backend=backend, device=device, threads=threads))
    check_top_k(top_k, pipe.spec.vae.vocab_size, "--top-k")
    var, vae = load_source_models(pipe.export, torch.device("cpu"))
    return var, vae, f"{pipe.export.description}, {pipe.spec.precision} on {pipe.backend.label}", PipelineSource(pipe)


@click.command("train")
@click.option("--model", type=click.Choice(sorted(recipe.RECIPES)), default=recipe.DEFAULT_MODEL, show_default=True,
              help="Which bundled model's recipe to train; the options below override its numbers.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run directory (resumed if it holds stages).  [default: runs/MODEL]")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--vqvae-steps", type=int, default=None, help="Default: the recipe's.")
@click.option("--var-steps", type=int, default=None, help="Default: the recipe's.")
@click.option("--encode-images", type=int, default=None, help="Default: the recipe's.")
@click.option("--decoder-steps", type=int, default=None, help="Default: the recipe's.")
@click.option("--threads", type=THREADS, default=None, help=threads_help("CPU threads; default: the recipe's"))
@click.option("--compile/--no-compile", "compile_var", default=None,
              help="compile the VAR training step with torch.compile (needs a C++ compiler; minutes of "
                   "compiling, then 1.3x a step at 155 tokens). Default: the recipe's.")
def train_cmd(model, out_dir, seed, vqvae_steps, var_steps, encode_images, decoder_steps, threads, compile_var):
    """Train a bundled model's recipe (VQVAE, encoding, VAR, decoder refinement) on procedural
    shapes; resumes from OUT."""
    from nova_deploy.train.reference import train_reference

    overrides = {"vqvae_steps": vqvae_steps, "var_steps": var_steps, "encode_images": encode_images,
                 "decoder_steps": decoder_steps, "threads": threads, "var_compile": compile_var}
    for name, value in (("--vqvae-steps", vqvae_steps), ("--var-steps", var_steps),
                        ("--encode-images", encode_images), ("--decoder-steps", decoder_steps)):
        if value is not None and value < 1:
            raise InvalidArgument(f"{name} must be >= 1, got {value}")
    chosen = replace(recipe.get_recipe(model), **{k: v for k, v in overrides.items() if v is not None})
    if chosen.var_compile and not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        # refused now, not when the VAR stage starts compiling, half an hour into the run
        raise InvalidArgument("--compile needs a C++ compiler (g++, c++ or clang++) on PATH and none was found: "
                              "install one, or pass --no-compile (the VAR step then runs about 1.3x slower)")
    out_dir = out_dir or f"runs/{model}"
    summary = train_reference(Path(out_dir), chosen, seed=seed)
    click.echo(f"wrote {out_dir}/var.safetensors and {out_dir}/vqvae.safetensors: {summary}")


@click.command("train-classifier")
@click.option("--out", "out_path", type=OUTPUT_FILE, default="classifier.safetensors", show_default=True,
              help="weights (safetensors); the card (json) is written beside it")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--steps", type=int, default=700, show_default=True)
@click.option("--batch", type=int, default=64, show_default=True)
@click.option("--threads", type=THREADS, default=1, show_default=True, help=threads_help("CPU threads"))
def train_classifier_cmd(out_path, seed, steps, batch, threads):
    """Train the shape classifier that `eval` scores samples with (shipped in nova_deploy/assets)."""
    from nova_deploy.eval.classifier import train_classifier

    _writable_dir_for(out_path)
    torch.set_num_threads(threads)
    card = train_classifier(out_path, seed=seed, steps=steps, batch=batch, log=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {out_path}: held-out accuracy {card['heldout']['accuracy']:.3f} "
               f"({card['heldout']['images']} images), {card['train_seconds']} s")
