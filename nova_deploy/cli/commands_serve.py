"""Serving commands: triton-repo (an export -> a Triton Inference Server model repository)."""
import click

from nova_deploy.serving.config import BACKENDS, DEVICES, ServingOptions

_DEFAULTS = ServingOptions()


@click.command("triton-repo")
@click.argument("export_dir", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Repository directory to write (replaced only if an earlier triton-repo wrote it).")
@click.option("--backend", default=_DEFAULTS.backend, show_default=True, metavar="|".join(BACKENDS),
              help="Runtime backend the served Pipeline runs on (tensorrt: engines from build-engines, cuda only).")
@click.option("--device", default=_DEFAULTS.device, show_default=True, metavar="|".join(DEVICES),
              help="cpu: instances of KIND_CPU; cuda: KIND_GPU, the instances on every GPU.")
@click.option("--instances", type=int, default=_DEFAULTS.instances, show_default=True,
              help="Model instances (one process and one Pipeline each), per GPU for --device cuda.")
@click.option("--max-batch", type=int, default=None,
              help="Most images Triton batches into one execution (default: the export's max batch).")
@click.option("--max-queue-delay-us", type=int, default=_DEFAULTS.max_queue_delay_us, show_default=True,
              help="How long the dynamic batcher may hold a request to fill a preferred batch size.")
@click.option("--dynamic-batching/--no-dynamic-batching", default=True, show_default=True,
              help="Let Triton batch requests together (off: each request executes alone).")
@click.option("--threads", type=int, default=_DEFAULTS.threads, show_default=True,
              help="CPU threads per instance (0: the backend's default, all cores).")
@click.option("--name", default=_DEFAULTS.name, show_default=True, help="Model name in the repository.")
def triton_repo_cmd(export_dir, out, backend, device, instances, max_batch, max_queue_delay_us, dynamic_batching,
                    threads, name):
    """Write a Triton Inference Server model repository serving EXPORT_DIR: a Python-backend model
    running Pipeline over a copy of the export (self-contained), with dynamic batching and
    instance groups (docs/SERVING.md)."""
    from nova_deploy.serving.repository import write_repository

    opts = ServingOptions(name=name, backend=backend, device=device, instances=instances, max_batch=max_batch,
                          dynamic_batching=dynamic_batching, max_queue_delay_us=max_queue_delay_us, threads=threads)
    write_repository(export_dir, out, opts)
    click.echo(f"wrote {out}: model {name} ({backend} on {device}, {instances} instance(s)); serve it with "
               f"`tritonserver --model-repository {out}`")
