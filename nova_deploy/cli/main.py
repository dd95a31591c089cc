"""`nova-deploy`: the command line. Errors the user can fix print one line and exit with code 2."""
import sys

import click

from nova_deploy import __version__
from nova_deploy.errors import NovaDeployError


class NovaGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NovaDeployError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=NovaGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="nova-deploy")
def cli():
    """Take VAR image generators from a PyTorch checkpoint to per-scale graphs and engines,
    accelerated by NOVA entropy-guided token pruning.

    Without --checkpoint/--vae, commands use the small reference model bundled with the package.
    """


def with_all_commands() -> click.Group:
    """The group with every command registered (importing a command module registers it); tests
    invoke this, so they see exactly the commands the console script has."""
    from nova_deploy.cli import commands_eval, commands_export, commands_model  # noqa: F401
    from nova_deploy.cli import commands_engines  # noqa: F401  (build-engines, inspect)
    from nova_deploy.cli import commands_bench  # noqa: F401  (bench)
    from nova_deploy.cli import commands_serve  # noqa: F401  (triton-repo)
    return cli


def main():
    with_all_commands()(prog_name="nova-deploy")
