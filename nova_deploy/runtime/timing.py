"""Where one generation's wall time went: inside the backend's graph calls, per graph, and outside.

On a GPU a backend's call returns once its work is queued, so a host clock around it measures the
enqueue, not the graph. There each call is bracketed by CUDA events on the caller's stream (every
backend makes that stream wait for its own work before returning), and the events are read once,
after one synchronisation at the end of the generation: per-graph times are GPU times.
"""
import time
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch


@dataclass
class Timing:
    total_s: float = 0.0
    backend_s: float = 0.0  # inside backend.infer: graph execution (on a GPU, its GPU time) and binding
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


class GraphClock:
    """Times graph calls into a Timing: host clock on CPU, CUDA events on a GPU (`finish` reads them)."""

    def __init__(self, timing: Timing, device: torch.device):
        self.timing, self.device = timing, torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._started = time.perf_counter()
        self._events: List[Tuple[str, "torch.cuda.Event", "torch.cuda.Event"]] = []

    def start(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            return event
        return time.perf_counter()

    def stop(self, graph: str, started) -> None:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record(torch.cuda.current_stream(self.device))
            self._events.append((graph, started, end))
        else:
            self.timing.add(graph, time.perf_counter() - started)

    def finish(self) -> Timing:
        """Waits for the device's work (on a GPU), then sets every graph's time and the total."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            for graph, start, end in self._events:
                self.timing.add(graph, start.elapsed_time(end) / 1e3)
            self._events.clear()
        self.timing.total_s = time.perf_counter() - self._started
        return self.timing
