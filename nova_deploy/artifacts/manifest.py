"""manifest.json on disk: written atomically, read with its format checked, and its schema.

`read_manifest` checks only the format marker and version (enough to tell an export directory from
anything else); `check_schema` checks every field a reader relies on, so that a hand-edited or
truncated manifest is refused with one line naming the field instead of a KeyError later.
"""
import json
import os
import re
from pathlib import Path
from typing import Tuple

from nova_deploy.artifacts.names import MANIFEST
from nova_deploy.errors import InvalidArgument

FORMAT, FORMAT_VERSION = "nova-deploy-export", 1

# (dotted field, JSON type, what it holds): every field ExportDir and the spec reader rely on
REQUIRED_FIELDS: Tuple[Tuple[str, type, str], ...] = (
    ("valid", bool, "true or false"),
    ("model", dict, "an object"),
    ("model.fingerprint", str, "a string"),
    ("model.source", dict, "an object"),
    ("model.var_config", dict, "an object"),
    ("model.vqvae_config", dict, "an object"),
    ("model.vqvae_config.vocab_size", int, "an integer"),
    ("model.vqvae_config.z_channels", int, "an integer"),
    ("precision", str, "a string"),
    ("max_batch", int, "an integer"),
    ("opset", int, "an integer"),
    ("prune_range", dict, "an object"),
    ("graphs", dict, "an object"),
    ("files", dict, "an object"),
)
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def write_manifest(out_dir: Path, manifest: dict) -> Path:
    path = Path(out_dir) / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def parse_manifest(data: bytes, where) -> dict:
    """The manifest in data (the bytes of `where`), its format marker and version checked."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidArgument(f"{where}: unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidArgument(f"{where}: not a nova-deploy export manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InvalidArgument(f"{where}: manifest format_version {manifest.get('format_version')!r}; "
                              f"this nova-deploy reads version {FORMAT_VERSION}")
    return manifest


def read_manifest(out_dir: Path) -> dict:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise InvalidArgument(f"{out_dir}: not an export directory (no {MANIFEST})")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidArgument(f"{path}: unreadable manifest ({e.strerror or e})") from None
    return parse_manifest(data, path)


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _is(value, kind: type) -> bool:
    # JSON true/false are Python bools, which are ints too: an integer field must not accept them
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def check_schema(manifest: dict, where) -> None:
    """InvalidArgument naming the first field that is missing or of the wrong type."""
    for dotted, kind, expected in REQUIRED_FIELDS:
        value = manifest
        for part in dotted.split("."):
            value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
        if value is _MISSING:
            raise InvalidArgument(f"{where}: field {dotted!r} is missing (expected {expected})")
        if not _is(value, kind):
            raise InvalidArgument(f"{where}: field {dotted!r} is {_json_type(value)}, expected {expected}")
    description = manifest["model"].get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidArgument(f"{where}: field 'model.description' is {_json_type(description)}, expected a string")
    for name, graph in manifest["graphs"].items():
        if not isinstance(graph, dict) or not isinstance(graph.get("file"), str):
            raise InvalidArgument(f"{where}: field 'graphs.{name}' needs 'file' (a string)")
    if not manifest["graphs"]:
        raise InvalidArgument(f"{where}: field 'graphs' is empty (an export has at least one graph)")
    for name, entry in manifest["files"].items():
        if not isinstance(entry, dict):
            raise InvalidArgument(f"{where}: field 'files.{name}' is {_json_type(entry)}, expected an object")
        if not (isinstance(entry.get("sha256"), str) and SHA256_HEX.fullmatch(entry["sha256"])):
            raise InvalidArgument(f"{where}: field 'files.{name}.sha256' must be 64 lowercase hex digits")
        if not (_is(entry.get("bytes"), int) and entry["bytes"] >= 0):
            raise InvalidArgument(f"{where}: field 'files.{name}.bytes' must be an integer >= 0")


_MISSING = object()
