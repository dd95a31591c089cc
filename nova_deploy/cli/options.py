"""Options shared by several commands, and the types that check a value where its option is declared.

The types raise InvalidArgument (one line `error: ...`, exit 2) rather than click's BadParameter,
whose usage error takes three lines; ranges come from nova_deploy.bounds.
"""
from pathlib import Path

import click

from nova_deploy.bounds import check_seed, check_threads, max_threads, parse_device
from nova_deploy.errors import InvalidArgument
from nova_deploy.models.presets import PRESETS
from nova_deploy.runtime.backends import BACKEND_NAMES
from nova_deploy.sampling import DRAWS, OFFICIAL_DRAW


def option_name(param) -> str:
    if isinstance(param, click.Option):
        return param.opts[0]
    return param.human_readable_name if param is not None else "value"


class CheckedInt(click.ParamType):
    """An integer checked by check(value, name) -> int."""
    name = "integer"

    def __init__(self, check):
        self.check = check

    def convert(self, value, param, ctx):
        what = option_name(param)
        if not isinstance(value, int):
            try:
                value = int(str(value).strip())
            except ValueError:
                raise InvalidArgument(f"{what} must be an integer, got {value!r}") from None
        return self.check(value, what)


class Device(click.ParamType):
    name = "device"

    def convert(self, value, param, ctx):
        return parse_device(value, option_name(param))


class FilePath(click.ParamType):
    """A path that must not be a directory (whether it exists is for the reader or writer to say)."""
    name = "file"

    def __init__(self, expect: str):
        self.expect = expect

    def convert(self, value, param, ctx):
        if Path(value).is_dir():
            raise InvalidArgument(f"{option_name(param)} {value} is a directory; {self.expect}")
        return str(value)


THREADS = CheckedInt(check_threads)
SEED = CheckedInt(check_seed)
DEVICE = Device()
CHECKPOINT_FILE = FilePath("give a checkpoint file (.pth or .safetensors)")
OUTPUT_FILE = FilePath("give the path of a file to write")


def threads_help(what: str) -> str:
    return f"{what} (1..{max_threads()}: at most 4 per core)"


def model_options(f):
    """--model (a bundled trained model), or --checkpoint and --vae, or --preset (random weights)."""
    from nova_deploy.model_source import BUNDLED_MODELS, DEFAULT_MODEL

    f = click.option("--model", "model", type=click.Choice(list(BUNDLED_MODELS)), default=None,
                     help=f"Bundled trained model (default: {DEFAULT_MODEL}, when no --checkpoint or --preset).")(f)
    f = click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
                     help="Model preset. With --checkpoint: the config the checkpoint must have. "
                          "Alone: that architecture with random weights.")(f)
    f = click.option("--vae", "vae_path", type=CHECKPOINT_FILE, default=None,
                     help="VQVAE checkpoint (.pth or .safetensors).")(f)
    f = click.option("--checkpoint", "var_path", type=CHECKPOINT_FILE, default=None,
                     help="VAR checkpoint (.pth or .safetensors).")(f)
    return f


def runtime_options(engines_help: str):
    """--engines DIR, and the --backend, --device and --threads the runtime runs it with."""
    def add(f):
        f = click.option("--threads", type=THREADS, default=None,
                         help=threads_help("CPU threads per graph call (for --engines; default: all)"))(f)
        f = click.option("--device", type=DEVICE, default="cpu", show_default=True,
                         help="cpu or cuda[:N] (for --engines).")(f)
        f = click.option("--backend", type=click.Choice(sorted(BACKEND_NAMES)), default="onnxruntime",
                         show_default=True, help="Runtime backend for --engines (torch-bf16: the torch backend "
                                                 "with transformer and decoder in bf16; other tokens).")(f)
        return click.option("--engines", "engines_dir", type=click.Path(file_okay=False), default=None,
                            help=engines_help)(f)
    return add


def draw_option(f):
    return click.option("--draw", type=click.Choice(list(DRAWS)), default=OFFICIAL_DRAW, show_default=True,
                        help="How each token is drawn: official (torch.multinomial, the official code's tokens "
                             "for a seed) or inverse-cdf (the same distribution from one variate per token: "
                             "cheaper, other tokens).")(f)


def expect_sha256_option(f):
    return click.option("--expect-sha256", "expect_sha256", default=None, metavar="HEX",
                        help="Refuse the export unless its manifest.json has this sha256 (`sha256sum "
                             "DIR/manifest.json` where you trust the export). The manifest's own hashes catch "
                             "accidents; this also catches a directory someone rewrote.")(f)
