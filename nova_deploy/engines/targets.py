"""Which GPUs a set of plans is built for.

A Target is a compute capability ("sm89") or, for TensorRT-RTX without --compute-capability,
"portable": the library's default set (Ampere and later, the RTX docs: 8.0, 8.6, 8.9, 12.0).
TensorRT proper builds for the GPU present, so its only target is that GPU's capability.
"""
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from nova_deploy.engines.library import Library
from nova_deploy.errors import BackendUnavailable, InvalidArgument

PORTABLE = "portable"


@dataclass(frozen=True)
class Target:
    name: str  # "sm89" or "portable": part of the engines directory name and of the cache key

    @property
    def capability(self) -> Optional[Tuple[int, int]]:
        if self.name == PORTABLE:
            return None
        digits = self.name[2:]
        return int(digits[:-1]), int(digits[-1])

    def runs_on(self, capability: Tuple[int, int]) -> bool:
        """Whether plans for this target run on a GPU of that capability (portable: Ampere and later)."""
        return capability >= (8, 0) if self.capability is None else self.capability == tuple(capability)


def current_capability() -> Optional[Tuple[int, int]]:
    import torch

    return tuple(torch.cuda.get_device_capability()) if torch.cuda.is_available() else None


def _parse(text: str) -> str:
    m = re.fullmatch(r"\s*(?:sm_?)?(\d+)\.?(\d)\s*", str(text), re.IGNORECASE)
    if not m:
        raise InvalidArgument(f"--compute-capability {text!r}: expected MAJOR.MINOR such as 8.9 or 12.0")
    return f"sm{m.group(1)}{m.group(2)}"


def rtx_capabilities(library: Library) -> List[str]:
    """The compute capabilities this TensorRT-RTX can build for, as target names (sm75, sm80, ...)."""
    return sorted((n.lower() for n in library.trt.ComputeCapability.__members__ if re.fullmatch(r"SM\d+", n)),
                  key=lambda n: int(n[2:]))


def parse_targets(library: Library, requested: Sequence[str]) -> List[Target]:
    names = list(dict.fromkeys(_parse(r) for r in requested))
    if library.is_rtx:
        valid = rtx_capabilities(library)
        for n in names:
            if n not in valid:
                raise InvalidArgument(
                    f"--compute-capability {n[2:-1]}.{n[-1]}: TensorRT-RTX {library.version} builds for "
                    f"{', '.join(f'{v[2:-1]}.{v[-1]}' for v in valid)} (no Hopper/sm90: use --library tensorrt there)")
        return [Target(n) for n in names] or [Target(PORTABLE)]
    here = current_capability()
    if here is None:
        raise BackendUnavailable("TensorRT builds engines on the GPU they are for, and there is no CUDA GPU here; "
                                 "build ahead of time with --library tensorrt-rtx --compute-capability X.Y")
    name = f"sm{here[0]}{here[1]}"
    if names and names != [name]:
        raise InvalidArgument(f"--compute-capability {', '.join(names)}: TensorRT builds only for the GPU present "
                              f"({here[0]}.{here[1]}); omit the option or build on that GPU")
    return [Target(name)]


def configure_target(library: Library, config, target: Target) -> None:
    """Point the builder config at the target (TensorRT-RTX only; TensorRT targets the GPU present)."""
    if not library.is_rtx or target.capability is None:
        return
    config.num_compute_capabilities = 1
    ok = config.set_compute_capability(getattr(library.trt.ComputeCapability, target.name.upper()), 0)
    if not ok:
        raise InvalidArgument(f"TensorRT-RTX {library.version} refused compute capability {target.name}")
