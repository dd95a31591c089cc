"""Commands on TensorRT engines: build-engines (export -> cached plans), inspect (plan or directory)."""
import sys

import click

from nova_deploy.cli.options import expect_sha256_option
from nova_deploy.engines.library import LIBRARIES, default_library


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@click.command("build-engines")
@click.argument("export_dir", type=click.Path(file_okay=False))
@click.option("--library", type=click.Choice(sorted(LIBRARIES)), default=None,
              help="TensorRT library. Default: tensorrt-rtx where installed (builds without a GPU), else tensorrt.")
@click.option("--max-batch", type=int, default=None,
              help="Most images per call the engines accept (1..the export's --max-batch; default: the export's).")
@click.option("--compute-capability", "capabilities", multiple=True, metavar="X.Y",
              help="TensorRT-RTX: build for this GPU architecture (repeatable: one engine set each), e.g. 8.9. "
                   "Default: RTX's portable set (Ampere and later). TensorRT: only the GPU present.")
@click.option("--timing-cache", type=click.Path(dir_okay=False), default=None,
              help="TensorRT timing cache file, read and updated (a no-op for TensorRT-RTX).")
@click.option("--opt-level", type=int, default=3, show_default=True, help="Builder optimization level, 0..5.")
@click.option("--weights", type=click.Choice(["shared", "embedded"]), default="shared", show_default=True,
              help="shared: weights several graphs use become engine inputs, held once on the GPU and bound "
                   "by every engine; embedded: each plan holds its own copy (docs/ENGINES.md).")
@click.option("--graph", "graphs", multiple=True, metavar="NAME",
              help="Build only this graph (repeatable). Default: every graph of the export.")
@expect_sha256_option
def build_engines_cmd(export_dir, library, max_batch, capabilities, timing_cache, opt_level, weights, graphs,
                      expect_sha256):
    """Build one TensorRT engine per graph of EXPORT_DIR into EXPORT_DIR/engines/<library>-<target>/,
    reusing every plan whose cache key (graph and weights hashes, library, target, profile, options)
    is unchanged."""
    from pathlib import Path

    from nova_deploy.engines.build_dir import build_engines
    from nova_deploy.engines.cache_key import BuildOptions
    from nova_deploy.engines.library import load_library
    from nova_deploy.engines.targets import parse_targets
    from nova_deploy.errors import BackendUnavailable

    name = library or default_library()
    if name is None:
        raise BackendUnavailable("no TensorRT library is installed; pip install tensorrt-rtx (builds without a GPU) "
                                 "or use NVIDIA's TensorRT container (docker/)")
    lib = load_library(name)
    targets = parse_targets(lib, capabilities)
    options = BuildOptions(opt_level=opt_level, max_batch=max_batch, weights=weights,
                           timing_cache=Path(timing_cache) if timing_cache else None)
    try:
        results = build_engines(export_dir, lib, targets, options, graphs=graphs, progress=True,
                                expect_sha256=expect_sha256)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: the engine being built was not written; those finished before are kept", err=True)
        sys.exit(EXIT_INTERRUPTED)
    built = [r for r in results if r.built]
    for r in results:
        state = f"built in {r.seconds:.1f} s ({r.reason})" if r.built else "cached"
        click.echo(f"  {r.target}/{r.graph}: {_mb(r.plan_bytes)}, {state}")
    click.echo(f"{len(built)} built, {len(results) - len(built)} cached ({lib.name} {lib.version}); "
               f"{_mb(sum(r.plan_bytes for r in results))} of plans in {Path(export_dir) / 'engines'}")


@click.command("inspect")
@click.argument("path", type=click.Path(exists=True))
def inspect_cmd(path):
    """Describe a TensorRT plan (cache key, library, target, profiles, layers and precisions, device
    memory where a GPU allows) or every plan under a directory."""
    from nova_deploy.engines.inspect import inspect_path

    for line in inspect_path(path):
        click.echo(line)
