"""Plans and sidecars on disk: where they live, atomic writes, and the checks before a plan is loaded.

A plan is written first (temporary name, fsync, rename), then its sidecar the same way; the sidecar
holds the plan's sha256 and size. A plan without a sidecar, with a sidecar of another key, or whose
bytes differ from the sidecar (partial write, corruption, replaced file) is never deserialized.
"""
import json
from pathlib import Path
from typing import Optional

from nova_deploy.atomic_write import write_bytes_atomic, write_json_atomic
from nova_deploy.artifacts.hashing import sha256_file
from nova_deploy.engines.cache_key import KEY_FIELDS, engine_key
from nova_deploy.engines.errors import EngineError

ENGINES_SUBDIR = "engines"
PLAN_SUFFIX, SIDECAR_SUFFIX = ".plan", ".json"


def engines_dir(export_path: Path, library: str, target: str) -> Path:
    return Path(export_path) / ENGINES_SUBDIR / f"{library}-{target}"


def sidecar_path(plan: Path) -> Path:
    return Path(plan).with_suffix(SIDECAR_SUFFIX)


def write_plan(plan: Path, data: bytes, sidecar: dict) -> None:
    import hashlib

    sidecar = dict(sidecar, plan_sha256=hashlib.sha256(data).hexdigest(), plan_bytes=len(data))
    write_bytes_atomic(plan, data)
    write_json_atomic(sidecar_path(plan), sidecar)


def read_sidecar(plan: Path) -> Optional[dict]:
    """The sidecar of a plan, None when it is missing or unreadable (the plan then counts as absent)."""
    path = sidecar_path(plan)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "key" in data else None


def plan_problem(plan: Path, sidecar: Optional[dict], expected_fields: Optional[dict] = None) -> Optional[str]:
    """Why the plan must not be used (None: it is intact and, when expected_fields is given, built
    for exactly those cache-key fields)."""
    plan = Path(plan)
    if sidecar is None:
        return f"{sidecar_path(plan).name} is missing or unreadable"
    if not plan.is_file():
        return f"{plan.name} is missing"
    fields = sidecar.get("fields") or {}
    try:
        if engine_key(fields) != sidecar["key"]:
            return "its sidecar was edited (the key does not hash the fields it lists)"
    except KeyError as e:
        return f"its sidecar is incomplete ({e})"
    if expected_fields is not None and engine_key(expected_fields) != sidecar["key"]:
        changed = [f for f in KEY_FIELDS if fields.get(f) != expected_fields.get(f)]
        return "its cache key is stale (changed: " + ", ".join(changed) + ")"
    if plan.stat().st_size != sidecar.get("plan_bytes"):
        return f"{plan.name} is {plan.stat().st_size} bytes, its sidecar says {sidecar.get('plan_bytes')} (partial write?)"
    if sha256_file(plan) != sidecar.get("plan_sha256"):
        return f"{plan.name} differs from the plan its sidecar describes (corrupt or replaced)"
    return None


def load_plan(plan: Path, expected_fields: Optional[dict] = None) -> bytes:
    """The plan's bytes once plan_problem finds nothing; EngineError naming the cause and the fix."""
    sidecar = read_sidecar(plan)
    problem = plan_problem(plan, sidecar, expected_fields)
    if problem:
        raise EngineError(f"{plan}: not loaded: {problem}; rebuild with `nova-deploy build-engines`")
    return Path(plan).read_bytes()
