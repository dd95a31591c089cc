"""Where one generation's wall time went: inside the backend's graph calls, per graph, and outside."""
from dataclasses import dataclass, field
from typing import Dict


@dataclass
class Timing:
    total_s: float = 0.0
    backend_s: float = 0.0  # inside backend.infer (graph execution and binding)
    per_graph_s: Dict[str, float] = field(default_factory=dict)

    def add(self, graph: str, seconds: float) -> None:
        self.backend_s += seconds
        self.per_graph_s[graph] = self.per_graph_s.get(graph, 0.0) + seconds

    @property
    def outside_backend_s(self) -> float:
        return self.total_s - self.backend_s

    def to_json(self) -> dict:
        return {"total_s": self.total_s, "backend_s": self.backend_s, "outside_backend_s": self.outside_backend_s,
                "per_graph_s": dict(self.per_graph_s)}
