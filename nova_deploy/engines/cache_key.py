"""The engine-cache key: a hash of everything that changes the built engine, written to its sidecar.

Hashed (KEY_FIELDS): the ONNX file's sha256 and weights.bin's (the graphs reference their weights
there, so a new checkpoint exported to the same graph structure must rebuild), the library's name
and version, the target (compute capability or "portable"), the optimization profile (after
--max-batch) and the build options that change the engine (--opt-level, --max-batch, --weights and
which tensors that lifted to inputs).
Not hashed: the timing-cache path (it speeds a TensorRT build up; the engine stays valid for the
same key) and the progress display. Whoever adds a build option: add it to BuildOptions.hashed()
when it changes the plan, or say here why not.
"""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from nova_deploy.engines.profiles import Profile, profile_to_json
from nova_deploy.engines.targets import Target
from nova_deploy.errors import InvalidArgument

KEY_FORMAT = 2  # bump when the sidecar or the way plans are built changes meaning
KEY_FIELDS = ("format", "onnx_sha256", "weights_sha256", "library", "library_version", "target", "profile", "options")
OPT_LEVELS = range(0, 6)  # TensorRT's builder_optimization_level


@dataclass(frozen=True)
class BuildOptions:
    opt_level: int = 3  # TensorRT's default; higher searches more tactics (longer builds)
    max_batch: Optional[int] = None  # None: the export's
    timing_cache: Optional[Path] = None
    # "shared": weights used by several graphs become engine inputs bound to one device copy
    # (weight_inputs.py); "embedded": every plan holds its own copy of its weights
    weights: str = "shared"

    def __post_init__(self):
        ok = isinstance(self.opt_level, int) and not isinstance(self.opt_level, bool) and self.opt_level in OPT_LEVELS
        if not ok:
            raise InvalidArgument(f"--opt-level {self.opt_level!r}: valid 0..5 (TensorRT builder optimization level)")
        if self.weights not in ("shared", "embedded"):
            raise InvalidArgument(f"--weights {self.weights!r}: valid shared, embedded")

    def hashed(self, max_batch: int, lifted: Sequence[str] = ()) -> dict:
        return {"opt_level": self.opt_level, "max_batch": max_batch, "weights": self.weights,
                "weight_inputs": sorted(lifted)}


def key_fields(onnx_sha256: str, weights_sha256: str, library: str, library_version: str, target: Target,
               profile: Profile, options: dict) -> dict:
    return {"format": KEY_FORMAT, "onnx_sha256": onnx_sha256, "weights_sha256": weights_sha256, "library": library,
            "library_version": library_version, "target": target.name, "profile": profile_to_json(profile),
            "options": options}


def engine_key(fields: dict) -> str:
    missing = [f for f in KEY_FIELDS if f not in fields]
    if missing:
        raise KeyError(f"cache key fields missing: {missing}")
    canonical = json.dumps({f: fields[f] for f in KEY_FIELDS}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
