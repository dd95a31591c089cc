"""The order of runs: warm-up rounds, then timed rounds interleaved across configurations.

Each round runs every configuration once, so that slow drift (another process, thermal state)
hits all configurations alike; each timed round starts one configuration later than the one
before, so that no configuration always runs right after the same neighbour.
"""
from dataclasses import dataclass
from typing import List, Sequence, TypeVar

from nova_deploy.errors import require

T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    round: int  # 0-based within its phase
    timed: bool  # False: warm-up, not recorded
    config: object


def interleaved(configs: Sequence[T], warmup: int, repeat: int) -> List[Step]:
    require(len(configs) > 0, "nothing to benchmark: no configurations")
    require(warmup >= 0, f"--warmup must be >= 0, got {warmup}")
    require(repeat >= 1, f"--repeat must be >= 1, got {repeat}")
    steps = [Step(r, False, c) for r in range(warmup) for c in configs]
    n = len(configs)
    for r in range(repeat):
        start = r % n
        steps += [Step(r, True, configs[(start + i) % n]) for i in range(n)]
    return steps
