"""Per-configuration statistics over timed samples: median (the figure reported) and min (the
least disturbed run), and the ratios between configurations."""
import statistics
from dataclasses import dataclass
from typing import List, Optional, Sequence

from nova_deploy.errors import require


@dataclass
class Stat:
    median: float
    min: float
    max: float
    n: int

    def to_json(self) -> dict:
        return {"median": self.median, "min": self.min, "max": self.max, "n": self.n}


def stat(values: Sequence[float]) -> Stat:
    require(len(values) > 0, "no samples to summarise")
    return Stat(median=float(statistics.median(values)), min=float(min(values)), max=float(max(values)),
                n=len(values))


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def per_scale_stats(samples_per_scale: List[List[float]]) -> List[Stat]:
    """samples_per_scale[run][scale] -> one Stat per scale."""
    return [stat(list(col)) for col in zip(*samples_per_scale)]

