"""`nova-deploy`: the command line. Errors the user can fix print one line and exit with code 2."""
import sys

import click

from nova_deploy import __version__
from nova_deploy.cli.commands_bench import bench_cmd
from nova_deploy.cli.commands_engines import build_engines_cmd, inspect_cmd
from nova_deploy.cli.commands_eval import eval_cmd, train_classifier_cmd, train_cmd
from nova_deploy.cli.commands_export import export_cmd, validate_cmd
from nova_deploy.cli.commands_model import convert_checkpoint_cmd, generate_cmd, info
from nova_deploy.cli.commands_serve import triton_repo_cmd
from nova_deploy.errors import NovaDeployError

COMMANDS = (info, convert_checkpoint_cmd, generate_cmd, eval_cmd, train_cmd, train_classifier_cmd, export_cmd,
            validate_cmd, build_engines_cmd, inspect_cmd, bench_cmd, triton_repo_cmd)


class NovaGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NovaDeployError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=NovaGroup, commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="nova-deploy")
def cli():
    """Take VAR image generators from a PyTorch checkpoint to per-scale graphs and engines,
    accelerated by NOVA entropy-guided token pruning.

    Without --checkpoint/--vae, commands use the small reference model bundled with the package.
    """


def main():
    cli(prog_name="nova-deploy")
