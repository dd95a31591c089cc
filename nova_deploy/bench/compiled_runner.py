"""The `torch-compile` peer: the reference sampler with its scale step and decoder under torch.compile,
what a user who does not export would run instead of this toolchain.

Settings, as a user would pick them for this workload: inductor's default mode; the scale step
with `dynamic=True`, the decoder with static shapes. The token count of a scale step changes with
every scale (pn*pn) and, under NOVA, with the kept tokens of each call: static shapes would compile
one graph per scale and per kept count and run into dynamo's recompile limit, and `dynamic=None`
compiles statically first, then again dynamically once the shape changes. Measured on the bundled
model, batch 1, dense, 1 thread on a loaded 2-core machine: first generation (compiling) 361 s
with `dynamic=True`, 476 s with `dynamic=None`, both 4 graphs (scale 0, scale 1 whose K/V prefix
of length 1 is specialised, the later scales, the decoder); steady state 188 and 198 ms/img against
eager's 218 and 249 ms/img in the same processes. The decoder sees one shape per batch size,
where a static graph is the faster one. `mode="reduce-overhead"` means CUDA graphs, which do
nothing on a CPU and record one graph per shape on a GPU; `max-autotune` multiplies a compile that
already takes minutes on 2 cores for GEMMs this small.

Compilation happens in `prepare`, one untimed generation per (batch, policy) the benchmark will
time: the bench reuses one seed, so that run meets every shape a timed run meets.
"""
import time
from typing import Optional, Sequence, Tuple

import torch

from nova_deploy.bench.configs import TORCH_COMPILE
from nova_deploy.bench.runners import ReferenceRunner, Sample
from nova_deploy.errors import BackendUnavailable
from nova_deploy.nova.policy import Policy
from nova_deploy.sampling import SamplingParams

# per wrapped method: torch.compile's keyword arguments (inductor, default mode; see the docstring)
COMPILE_OPTIONS = {"scale_step": {"dynamic": True}, "decoder": {"dynamic": False}}
# scale 0 (no K/V prefix) and scales 1.. are two graphs per batch size, and NOVA adds one per
# pattern of pruned layers; above dynamo's default of 8 a function would silently run eagerly
RECOMPILE_LIMIT = 64


def compiler_problem() -> Optional[str]:
    """Why inductor cannot compile for the CPU here (no working C++ compiler), or None. Inductor's
    own search: the compiler it would use (`CXX` at import, else g++) must answer `--version`."""
    from torch._inductor import cpp_builder, exc

    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler as e:
        return f"{e} (install g++ or point CXX at a C++ compiler)"
    return None


def _graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


class CompiledRunner(ReferenceRunner):
    name = TORCH_COMPILE

    def __init__(self, export, device: str = "cpu"):
        if torch.device(device).type == "cpu":
            problem = compiler_problem()
            if problem:
                raise BackendUnavailable(f"runner {TORCH_COMPILE} needs a C++ compiler for inductor: {problem}")
        super().__init__(export, device)
        self.compile_s: Optional[float] = None
        self.graphs = 0  # compiled by prepare
        self.graphs_in_timed_runs = 0  # compiled later: 0 unless a timed run met a shape prepare did not

    def wrap(self, fn, role: str):
        return super().wrap(torch.compile(fn, **COMPILE_OPTIONS[role]), role)

    def _run_compiled(self, *args, **kwargs) -> Sample:
        import torch._dynamo.config as dynamo_config
        from torch._dynamo.exc import BackendCompilerFailed, FailOnRecompileLimitHit

        try:
            with dynamo_config.patch(recompile_limit=RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True):
                return super().run(*args, **kwargs)
        except (BackendCompilerFailed, FailOnRecompileLimitHit) as e:  # a compiler that fails, or eager fallback
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendUnavailable(f"runner {TORCH_COMPILE}: torch.compile failed: {first[:300]}") from None

    def prepare(self, jobs: Sequence[Tuple[int, Policy]], seed: int, params: SamplingParams) -> None:
        """Compiles every graph the timed runs need: one untimed generation per (batch, policy)."""
        g0, t0 = _graphs_compiled(), time.perf_counter()
        for batch, policy in jobs:
            self._run_compiled(batch, policy, seed, params)
        self.compile_s, self.graphs = time.perf_counter() - t0, _graphs_compiled() - g0

    def run(self, batch: int, policy: Policy, seed: int, params: SamplingParams, keep_outputs: bool = False,
            labels=None) -> Sample:
        g0 = _graphs_compiled()
        sample = self._run_compiled(batch, policy, seed, params, keep_outputs, labels)
        self.graphs_in_timed_runs += _graphs_compiled() - g0
        return sample

    def compile_info(self) -> Optional[dict]:
        return {"backend": "inductor", "mode": "default", "options": COMPILE_OPTIONS, "compile_s": self.compile_s,
                "graphs": self.graphs, "graphs_in_timed_runs": self.graphs_in_timed_runs}
