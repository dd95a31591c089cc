"""Runners: open once, then time one generation at a time, returning a Sample.

RuntimeRunner runs the export's graphs with a runtime backend (Pipeline); its breakdown comes from
the pipeline's own timing (per graph call, and the rest: sampling, CFG, NOVA's decisions, feeds).
ReferenceRunner runs `nova_deploy.sampler.generate` on the PyTorch model the export came from (the
official code's draw whatever the deployed runners draw: it stands for the official code); its
breakdown times the model's scale steps (the transformer, head included, as in the scale graphs)
and the VQVAE decoder by wrapping those two methods on its own private model instance.
CompiledRunner (compiled_runner) is the reference sampler with those two methods under torch.compile.
"""
import time
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from nova_deploy.bench.configs import REFERENCE, RUNTIME_RUNNERS
from nova_deploy.flops import dense_kept, transformer_flops
from nova_deploy.nova.policy import Policy
from nova_deploy.sampling import OFFICIAL_DRAW, SamplingParams


@dataclass
class Sample:
    """One timed generation of a whole batch."""
    wall_s: float  # around the generate call
    transformer_s: float  # scale graphs / scale steps (blocks and head), all scales
    decoder_s: float  # VQVAE decoder
    outside_s: float  # outside backend calls (runtime) / outside model calls (reference)
    per_scale_s: List[float]  # transformer time per scale
    flops_dense: int  # analytic transformer FLOPs per image, CFG rows included
    flops_pruned: int
    per_graph_s: Dict[str, float] = field(default_factory=dict)
    tokens: Optional[List[torch.Tensor]] = None  # sampled ids per scale (quality comparisons)
    images: Optional[torch.Tensor] = None


def dense_flops(patch_nums, depth: int, C: int) -> int:
    return transformer_flops(dense_kept(patch_nums, depth), rows=2, C=C)


def flops_of(trace: Optional[List[dict]], patch_nums, depth: int, C: int):
    dense = dense_flops(patch_nums, depth, C)
    if not trace:
        return dense, dense
    return trace[0]["transformer_flops_dense"], trace[0]["transformer_flops_pruned"]


def labels_for(batch: int, num_classes: int) -> List[int]:
    return [i % num_classes for i in range(batch)]


class Runner:
    """What the bench calls on every runner. prepare and compile_info matter to runners that compile."""
    name: str

    def prepare(self, jobs: Sequence[Tuple[int, Policy]], seed: int, params: SamplingParams) -> None:
        """One-time work before any round, given every (batch, policy) the runner will be timed at."""

    def compile_info(self) -> Optional[dict]:
        return None


class RuntimeRunner(Runner):
    def __init__(self, name: str, export, device: str = "cpu", threads: Optional[int] = None):
        from nova_deploy.runtime.backends import backend_class
        from nova_deploy.runtime.pipeline import Pipeline

        backend_name, kwargs = RUNTIME_RUNNERS[name]
        backend = backend_class(backend_name)(export, device, threads, **kwargs)
        backend.activate()
        self.name, self.pipe = name, Pipeline(export, backend)
        v = export.spec.var
        self.patch_nums, self.depth, self.C, self.num_classes = export.spec.patch_nums, v.depth, v.embed_dim, v.num_classes

    def run(self, batch: int, policy: Policy, seed: int, params: SamplingParams, keep_outputs: bool = False,
            labels: Optional[List[int]] = None) -> Sample:
        labels = labels if labels is not None else labels_for(batch, self.num_classes)
        t0 = time.perf_counter()
        r = self.pipe.generate(labels, seed=seed, cfg=params.cfg, top_k=params.top_k, top_p=params.top_p,
                               more_smooth=params.more_smooth, draw=params.draw, policy=policy, want_trace=policy.name != "none")
        wall = time.perf_counter() - t0
        g = r.timing.per_graph_s
        per_scale = [g.get(self.pipe.spec.scale_graph(si).name, 0.0) for si in range(len(self.patch_nums))]
        dense, pruned = flops_of(r.trace, self.patch_nums, self.depth, self.C)
        return Sample(wall_s=wall, transformer_s=sum(per_scale), decoder_s=g.get("decoder", 0.0),
                      outside_s=r.timing.outside_backend_s, per_scale_s=per_scale, flops_dense=dense,
                      flops_pruned=pruned, per_graph_s=dict(g),
                      tokens=r.tokens if keep_outputs else None, images=r.images if keep_outputs else None)

    def close(self) -> None:
        self.pipe.close()


class _Stopwatch:
    """Wraps a callable, adding its wall time to `seconds` (and each call's time to `calls`). On a
    GPU it synchronises before and after the call, so that the time is the call's kernels and not
    their launch (a harness for measuring, not a serving path)."""

    def __init__(self, fn, device: torch.device):
        self.fn, self.seconds, self.calls = fn, 0.0, []
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def __call__(self, *args, **kwargs):
        self.sync()
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.sync()
            dt = time.perf_counter() - t0
            self.seconds += dt
            self.calls.append(dt)

    def reset(self):
        self.seconds, self.calls = 0.0, []


class ReferenceRunner(Runner):
    name = REFERENCE

    def __init__(self, export, device: str = "cpu"):
        from nova_deploy.runtime.backends.torch_backend import load_source_models

        self.device = torch.device(device)
        self.var, self.vae = load_source_models(export, self.device)
        # a private model instance: timing wrappers on its two entry points, nothing else changes
        self.scale_step = self.var.scale_step = self.wrap(self.var.scale_step, "scale_step")
        self.decode = self.vae.fhat_to_img = self.wrap(self.vae.fhat_to_img, "decoder")
        self.patch_nums, self.depth, self.C = tuple(self.var.patch_nums), self.var.depth, self.var.C
        self.num_classes = self.var.num_classes

    def wrap(self, fn, role: str) -> _Stopwatch:
        """role: scale_step or decoder; a subclass may run fn differently (compiled)."""
        return _Stopwatch(fn, self.device)

    def run(self, batch: int, policy: Policy, seed: int, params: SamplingParams, keep_outputs: bool = False,
            labels: Optional[List[int]] = None) -> Sample:
        from nova_deploy.sampler import generate

        labels = labels if labels is not None else labels_for(batch, self.num_classes)
        self.scale_step.reset()
        self.decode.reset()
        t0 = time.perf_counter()
        r = generate(self.var, batch, torch.tensor(labels), g_seed=seed, params=replace(params, draw=OFFICIAL_DRAW),
                     policy=policy,
                     want_trace=policy.name != "none")
        self.decode.sync()  # the images are ready
        wall = time.perf_counter() - t0
        per_scale = list(self.scale_step.calls)
        dense, pruned = flops_of(r.trace, self.patch_nums, self.depth, self.C)
        inside = self.scale_step.seconds + self.decode.seconds
        return Sample(wall_s=wall, transformer_s=sum(per_scale), decoder_s=self.decode.seconds,
                      outside_s=wall - inside, per_scale_s=per_scale, flops_dense=dense, flops_pruned=pruned,
                      tokens=r.idx_Bl if keep_outputs else None, images=r.images if keep_outputs else None)

    def close(self) -> None:
        self.var = self.vae = None
