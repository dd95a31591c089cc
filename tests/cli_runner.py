"""Runs `nova-deploy` in-process, with the console script's commands, for the CLI tests."""
from click.testing import CliRunner

from nova_deploy.cli.main import cli


def run_cli(*args):
    return CliRunner().invoke(cli, list(map(str, args)))
