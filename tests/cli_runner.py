"""Runs `nova-deploy` in-process, with the console script's commands, for the CLI tests."""
from click.testing import CliRunner

from nova_deploy.cli.main import with_all_commands


def run_cli(*args):
    return CliRunner().invoke(with_all_commands(), list(map(str, args)))
