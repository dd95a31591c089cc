"""Commands on exports: export (model -> validated per-scale ONNX graphs), validate (re-run the checks)."""
import click

from nova_deploy.cli.options import expect_sha256_option, model_options
from nova_deploy.errors import InvalidArgument
from nova_deploy.export.spec import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, PRECISIONS, PruneRange
from nova_deploy.model_source import resolve_models


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


@click.command("export")
@model_options
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Export directory, e.g. engines/<name>/ (replaced only by an export of the same model).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="Transformer weights and activations; LayerNorm, softmax and logits stay fp32.")
@click.option("--max-batch", type=int, default=8, show_default=True,
              help="Most images per call (the graphs take 2x rows for CFG).")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True,
              help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET}.")
@click.option("--prune-from", type=int, default=PruneRange().first_scale, show_default=True,
              help="First scale whose token counts may be pruned (earlier scales are static); "
                   "the scale count means no pruning.")
@click.option("--min-keep", type=float, default=0.0, show_default=True,
              help="Fewest tokens a layer may keep at a prunable scale, as a fraction (0: down to one token).")
@click.option("--force", is_flag=True, help="Export and validate again even when --out already holds this very "
              "export (same model, options and nova-deploy version, files unchanged).")
def export_cmd(var_path, vae_path, preset, model, out, precision, max_batch, opset, prune_from, min_keep, force):
    """Export the model to one ONNX graph per scale (plus conditioning, f_hat updates and the
    decoder), sharing one weights file, and validate every graph against PyTorch."""
    from pathlib import Path

    from nova_deploy.artifacts.hashing import sha256_file
    from nova_deploy.artifacts.names import MANIFEST
    from nova_deploy.export.exporter import export_model

    prune = PruneRange(first_scale=prune_from, min_keep_fraction=min_keep)
    src = resolve_models(var_path, vae_path, preset, model=model)
    click.echo(f"model: {src.description}", err=True)
    result = export_model(src, out, precision=precision, max_batch=max_batch, opset=opset, prune=prune,
                          progress=True, force=force)
    m, w = result.manifest, result.manifest["weights"]
    pin = f"  manifest sha256 {sha256_file(Path(out) / MANIFEST)} (pin it: --expect-sha256)"
    if result.reused:
        click.echo(f"{out} is up to date: same model, options and nova-deploy version, every file unchanged "
                   f"(validated when written; --force exports again)")
        click.echo(pin)
        return
    click.echo(f"wrote {out}: {len(m['graphs'])} graphs ({precision}, opset {opset}, max batch {max_batch}), "
               f"validated at {len(m['validation']['cases'])} shapes")
    click.echo(f"  weights.bin {_mb(w['bytes_on_disk'])} for {_mb(w['raw_weight_bytes'])} of raw weights "
               f"(graphs reference {_mb(w['bytes_referenced_by_graphs'])}); directory {_mb(w['directory_bytes'])}")
    for role, e in m["validation"]["worst_by_role"].items():
        click.echo(f"  worst {role:7s} error {e['max_abs']:.3g} ({e['rel_to_peak']:.2g} of peak) "
                   f"in {e['graph']}.{e['output']}")
    click.echo(pin)
    traced = "" if result.trace_peak_rss_mb is None else f" ({result.trace_peak_rss_mb:.0f} MB until tracing ended)"
    click.echo(f"  {result.seconds:.1f} s, peak RSS {result.peak_rss_mb:.0f} MB{traced}")


@click.command("validate")
@click.argument("export_dir", type=click.Path(file_okay=False))
@model_options
@expect_sha256_option
def validate_cmd(export_dir, var_path, vae_path, preset, model, expect_sha256):
    """Re-run the export validation on EXPORT_DIR (default model: the one its manifest names): the
    export against the model (configs, codebook, every stored weight), then every graph."""
    from nova_deploy.export.exporter import validate_dir
    from nova_deploy.export.manifest import open_export

    export = open_export(export_dir, expect_sha256=expect_sha256, require_valid=False, check_files=False)
    manifest = export.manifest
    if var_path is None and vae_path is None and preset is None and model is None:
        source = manifest["model"]["source"]
        if source.get("kind") == "checkpoint" and all(isinstance(source.get(k), str) for k in ("var", "vae")):
            var_path, vae_path = source["var"], source["vae"]
        elif source.get("kind") == "preset" and isinstance(source.get("preset"), str):
            preset = source["preset"]
        else:
            raise InvalidArgument(f"{export_dir}: the manifest does not say which model it came from; "
                                  f"give --checkpoint/--vae or --preset")
    src = resolve_models(var_path, vae_path, preset, model=model)
    click.echo(f"model: {src.description}", err=True)
    report = validate_dir(export_dir, src, progress=True, expect_sha256=export.manifest_sha256)
    click.echo(f"{export_dir}: valid ({len(manifest['graphs'])} graphs, {len(report.cases)} shapes each); "
               f"manifest sha256 {export.manifest_sha256}")
