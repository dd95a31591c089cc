"""Issue 26's targets (ratios measured in one run, CFG on), checked against a BenchResult.

The deployed path is the runtime over an export (every runner of RUNTIME_RUNNERS); "the official
algorithm" is the reference sampler, dense. On a bundled reference model the targets are the
orchestration's (time outside graph calls, NOVA's transformer phase against dense); on any other
model (issue 26 sets them on d16 with random weights) they are end-to-end speed against the official
algorithm, memory against the weight bytes, and how much of NOVA's FLOP cut becomes wall time.
Every target is reported, measured or not; a MISS says what limits it, from the measured figures.
"""
from dataclasses import asdict, dataclass
from typing import List, Optional

from nova_deploy.bench.configs import CHANGES_OUTPUT, NOVA_FIXED, REFERENCE, RUNTIME_RUNNERS

E2E_NOVA, E2E_DENSE, MEMORY_FACTOR, REALISED = 2.5, 1.5, 1.3, 0.9
OUTSIDE_REFERENCE_MODEL, OUTSIDE_LARGE_MODEL = 0.05, 0.02


@dataclass
class Target:
    name: str
    threshold: float
    higher_is_better: bool
    measured: Optional[float]  # None: a configuration it needs was not run
    detail: str  # which configurations, and the figures behind the ratio
    limit: str = ""  # on a MISS: what limits it

    @property
    def status(self) -> str:
        if self.measured is None:
            return "NOT MEASURED"
        ok = self.measured >= self.threshold if self.higher_is_better else self.measured <= self.threshold
        return "PASS" if ok else "MISS"

    def to_json(self) -> dict:
        return {**asdict(self), "status": self.status}


def nova_policy(result) -> Optional[str]:
    """The policy standing for NOVA's default config: `nova`, else the fixed ratios derived from it."""
    policies = result.options.policies
    return "nova" if "nova" in policies else NOVA_FIXED if NOVA_FIXED in policies else None


def deployed(result, policy: Optional[str], batch: int):
    """The deployed path's results for policy at batch, fastest first."""
    found = [r for r in result.results if r.config.runner in RUNTIME_RUNNERS and r.config.policy == policy
             and r.config.batch == batch]
    return sorted(found, key=lambda r: r.s_per_image)


def _split(r) -> str:
    s = r.stats
    return (f"transformer {s['transformer_s'].median:.3f} s, decoder {s['decoder_s'].median:.3f} s, outside "
            f"backend calls {s['outside_s'].median:.3f} s of {s['wall_s'].median:.3f} s per batch")


def evaluate_targets(result) -> List[Target]:
    if result.is_reference_model:
        return _orchestration_targets(result, OUTSIDE_REFERENCE_MODEL, nova_transformer=True)
    return _end_to_end_targets(result) + _orchestration_targets(result, OUTSIDE_LARGE_MODEL, nova_transformer=False)


def _end_to_end_targets(result) -> List[Target]:
    out: List[Target] = []
    nova = nova_policy(result)
    ref = result.find(REFERENCE, "none", 1)
    for policy, need, what in ((nova, E2E_NOVA, f"NOVA ({nova})" if nova else "NOVA"), ("none", E2E_DENSE, "dense")):
        fastest = deployed(result, policy, 1) if policy else []
        t = Target(f"{what} on the deployed path (fastest backend) >= {need}x the official algorithm, end to end, "
                   f"batch 1", need, True, None,
                   f"needs the reference sampler (--reference) and a runtime backend with policy {policy} at batch 1")
        if ref and fastest:
            best = fastest[0]
            t.measured = ref.s_per_image / best.s_per_image
            t.detail = (f"official algorithm {ref.s_per_image:.3f} s/img vs {best.config.label} "
                        f"{best.s_per_image:.3f} s/img")
            if best.config.runner in CHANGES_OUTPUT:
                t.detail += f" ({CHANGES_OUTPUT[best.config.runner]})"
            t.limit = f"official algorithm: {_split(ref)}; {best.config.label}: {_split(best)}"
            if policy != "none":
                t.limit += f"; FLOP reduction {best.flop_reduction:.2f}x"
        out.append(t)

    weights = result.weight_bytes
    for r in deployed(result, "none", 1):
        t = Target(f"resident memory <= {MEMORY_FACTOR}x the weight bytes, {r.config.label}", MEMORY_FACTOR, False,
                   None, "needs --memory and the manifest's weights.raw_weight_bytes")
        if r.memory is not None and weights:
            t.measured = r.memory.growth_mb * 2 ** 20 / weights
            t.detail = (f"RSS growth {r.memory.growth_mb:.0f} MB (peak {r.memory.peak_rss_mb:.0f} MB) against "
                        f"{weights / 2 ** 20:.0f} MB of weights")
            t.limit = "growth = the runner's sessions, weights copies and work buffers over the imported libraries"
        out.append(t)

    for runner in ("onnxruntime", "torch"):
        for b in (1, 4):
            dense, pruned = result.find(runner, "none", b), result.find(runner, nova, b) if nova else None
            t = Target(f"NOVA realised transformer speedup / FLOP reduction >= {REALISED}, {runner}, batch {b}",
                       REALISED, True, None, f"needs {runner} with policies none and nova (or {NOVA_FIXED}) at batch {b}")
            if dense and pruned:
                t.measured = pruned.realised_over_flop
                t.detail = (f"transformer {dense.stats['transformer_s'].median:.3f} -> "
                            f"{pruned.stats['transformer_s'].median:.3f} s per batch for a "
                            f"{pruned.flop_reduction:.2f}x FLOP reduction")
                t.limit = ("work pruning does not remove: kept-token gathers and scatters, the cache fill, "
                           "per-call fixed costs, which weigh more as calls get shorter")
            out.append(t)
    return out


def _orchestration_targets(result, outside_limit: float, nova_transformer: bool) -> List[Target]:
    out: List[Target] = []
    nova = nova_policy(result)
    for r in result.results:
        if r.config.runner not in RUNTIME_RUNNERS or r.config.batch != 1:
            continue
        out.append(Target(f"time outside graph calls <= {outside_limit:.0%}, {r.config.label}", outside_limit, False,
                          r.stats["outside_fraction"].median,
                          f"{r.stats['outside_s'].median * 1000:.1f} ms of {r.stats['wall_s'].median * 1000:.1f} ms "
                          f"per batch outside backend calls",
                          "sampling, CFG, NOVA's entropy and decisions, K/V appends and feeds run between the "
                          "graph calls"))
    if nova_transformer and nova:
        for runner in (r for r in result.options.runners if r in RUNTIME_RUNNERS):
            dense, pruned = result.find(runner, "none", 1), result.find(runner, nova, 1)
            t = Target(f"NOVA's transformer phase no slower than dense, {runner}, batch 1", 1.0, True, None,
                       f"needs {runner} with policies none and {nova} at batch 1")
            if dense and pruned:
                t.measured = pruned.speedup_transformer
                t.detail = (f"transformer {dense.stats['transformer_s'].median * 1000:.1f} -> "
                            f"{pruned.stats['transformer_s'].median * 1000:.1f} ms per batch, FLOP reduction "
                            f"{pruned.flop_reduction:.2f}x")
                t.limit = "the pruned path's gathers, scatters and cache fill cost more than the FLOPs it saves"
            out.append(t)
    return out

