"""Pieces shared by the trainers: resumable checkpoints, JSONL loss logs, the LR schedule."""
import json
import math
import time
from pathlib import Path
from typing import Optional

import torch

from nova_deploy.atomic_write import append_line, write_atomic
from nova_deploy.errors import InvalidArgument


def cosine_lr(step: int, total: int, peak: float, warmup: int, floor_ratio: float = 0.05) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor_ratio + (1 - floor_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def save_training_state(path: Path, model, opt, step: int, total_steps: int, extra: Optional[dict] = None) -> None:
    """Atomic: written to a temporary name, renamed when complete, so a kill never leaves half a file.
    total_steps: the length of the LR schedule, which a resume must keep."""
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "total_steps": total_steps,
             "torch_rng": torch.get_rng_state(), "extra": extra or {}}
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def check_same_schedule(path: Path, state: dict, total_steps: int) -> None:
    """Resuming another step count would splice two cosine schedules into a model no fresh run
    reproduces. (A state that records no total_steps is resumed unchecked.)"""
    saved = state.get("total_steps")
    if saved is not None and int(saved) != total_steps:
        raise InvalidArgument(f"{path} is step {state['step']} of a {saved}-step schedule and this run asks for "
                              f"{total_steps} steps: resuming would mix two schedules; use another --out, or "
                              f"delete {path.name} to train that stage afresh")


def training_state_complete(path: Path, total_steps: int) -> bool:
    """Whether path holds the last step of this very schedule, so resuming it trains nothing
    (memory-mapped: only the step and schedule length are read). A state of another schedule is
    refused here, before any stage runs, as load_training_state would refuse it."""
    if not path.exists():
        return False
    state = torch.load(path, weights_only=True, mmap=True)
    check_same_schedule(path, state, total_steps)
    return int(state["step"]) >= total_steps


def load_training_state(path: Path, model, opt, total_steps: int) -> int:
    """Resumes only the schedule it was saved from (check_same_schedule)."""
    state = torch.load(path, weights_only=True)
    check_same_schedule(path, state, total_steps)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


class LossLog:
    """Appends one JSON object per logged step; survives resumes (append mode)."""

    def __init__(self, path: Path):
        self.path = path
        self.t0 = time.time()

    def write(self, **fields) -> None:
        fields["wall_s"] = round(time.time() - self.t0, 2)
        append_line(self.path, json.dumps(fields))
