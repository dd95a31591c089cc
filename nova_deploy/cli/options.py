"""Options shared by several commands."""
import click

from nova_deploy.models.presets import PRESETS


def model_options(f):
    f = click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
                     help="Model preset. With --checkpoint: the config the checkpoint must have. "
                          "Alone: that architecture with random weights.")(f)
    f = click.option("--vae", "vae_path", type=click.Path(dir_okay=False), default=None,
                     help="VQVAE checkpoint (.pth or .safetensors).")(f)
    f = click.option("--checkpoint", "var_path", type=click.Path(dir_okay=False), default=None,
                     help="VAR checkpoint (.pth or .safetensors). Default: the bundled reference model.")(f)
    return f


def expect_sha256_option(f):
    return click.option("--expect-sha256", "expect_sha256", default=None, metavar="HEX",
                        help="Refuse the export unless its manifest.json has this sha256 (`sha256sum "
                             "DIR/manifest.json` where you trust the export). The manifest's own hashes catch "
                             "accidents; this also catches a directory someone rewrote.")(f)
