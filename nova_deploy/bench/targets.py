"""The issue's targets (ratios measured in one run, CFG on), checked against a BenchResult.

Every target is reported, measured or not; a MISS says what limits it, from the measured figures.
"""
from dataclasses import asdict, dataclass
from typing import List, Optional

from nova_deploy.bench.configs import NOVA_FIXED, REFERENCE


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


def evaluate_targets(result) -> List[Target]:
    out: List[Target] = []
    batches = result.options.batches
    nova = nova_policy(result)
    nova_name = "NOVA" if nova == "nova" else f"NOVA ratios ({NOVA_FIXED})"

    # 1. ONNX Runtime dense vs PyTorch eager dense, end to end
    for b in batches:
        ort, eager = result.find("onnxruntime", "none", b), result.find("torch", "none", b)
        t = Target(f"ONNX Runtime dense >= 1.8x PyTorch eager dense, end to end, batch {b}", 1.8, True, None,
                   "needs runners torch and onnxruntime with policy none")
        if ort and eager:
            t.measured = eager.s_per_image / ort.s_per_image
            t.detail = f"torch {eager.s_per_image:.3f} s/img vs onnxruntime {ort.s_per_image:.3f} s/img (median)"
            t.limit = (f"graph compute: transformer {eager.stats['transformer_s'].median:.3f} -> "
                       f"{ort.stats['transformer_s'].median:.3f} s, decoder {eager.stats['decoder_s'].median:.3f} -> "
                       f"{ort.stats['decoder_s'].median:.3f} s; outside backend calls {eager.stats['outside_s'].median:.3f}"
                       f" -> {ort.stats['outside_s'].median:.3f} s per batch")
        out.append(t)

    # 2-3. NOVA over dense on the same backend, transformer phase; realised / FLOP reduction
    for runner in result.options.runners:
        for b, need in ((8, 2.0), (1, 1.6)):
            dense, pruned = result.find(runner, "none", b), result.find(runner, nova, b) if nova else None
            t = Target(f"{nova_name} transformer phase >= {need}x dense, {runner}, batch {b}", need, True, None,
                       f"needs {runner} with policies none and nova (or {NOVA_FIXED}) at batch {b}")
            if dense and pruned:
                t.measured = pruned.speedup_transformer
                t.detail = (f"transformer {dense.stats['transformer_s'].median:.3f} -> "
                            f"{pruned.stats['transformer_s'].median:.3f} s per batch; FLOP reduction "
                            f"{pruned.flop_reduction:.2f}x")
                t.limit = (f"the FLOP reduction itself is {pruned.flop_reduction:.2f}x: a perfect realisation "
                           f"gives at most that" if pruned.flop_reduction < need
                           else f"realised {pruned.realised_over_flop:.2f} of the FLOP reduction")
            out.append(t)
            if b == 8:
                r = Target(f"{nova_name} realised speedup / FLOP reduction >= 0.85, {runner}, batch 8", 0.85, True,
                           None, t.detail)
                if dense and pruned:
                    r.measured = pruned.realised_over_flop
                    r.limit = ("not profiled per operator; candidates: work pruning does not remove (gathers and "
                               "scatters of kept tokens and filled caches, LayerNorm/AdaLN, the head, per-call "
                               "fixed costs that weigh more as calls get shorter)")
                out.append(r)

    # 4. NOVA on ONNX Runtime vs the reference sampler (dense), end to end, batch 1
    ref, fast = result.find(REFERENCE, "none", 1), result.find("onnxruntime", nova, 1) if nova else None
    t = Target(f"{nova_name} on ONNX Runtime >= 3x the PyTorch reference sampler (dense), end to end, batch 1",
               3.0, True, None, "needs the reference sampler (--reference), onnxruntime with nova, batch 1")
    if ref and fast:
        t.measured = ref.s_per_image / fast.s_per_image
        t.detail = f"reference {ref.s_per_image:.3f} s/img vs onnxruntime {nova} {fast.s_per_image:.3f} s/img"
        t.limit = (f"= ONNX Runtime over eager x pruning: onnxruntime dense is "
                   f"{_fmt(_safe(ref, result.find('onnxruntime', 'none', 1)))}x the reference, {nova} "
                   f"{_fmt(fast.speedup_e2e)}x dense end to end (FLOP reduction {fast.flop_reduction:.2f}x)")
    out.append(t)

    # 5. time outside backend calls on ONNX Runtime
    for r in result.results:
        if r.config.runner != "onnxruntime":
            continue
        frac = r.stats["outside_fraction"].median
        out.append(Target(f"time outside backend calls <= 5% on ONNX Runtime, {r.config.policy} batch {r.config.batch}",
                          0.05, False, frac,
                          f"{r.stats['outside_s'].median * 1000:.0f} ms of {r.stats['wall_s'].median * 1000:.0f} ms "
                          f"per batch outside ONNX Runtime calls",
                          "not profiled per operator: sampling, CFG, NOVA's entropy and decisions, K/V appends and "
                          "feeds run in torch between the graph calls, and ONNX Runtime's worker threads share "
                          "the same cores"))
    return out


def _safe(ref, ort):
    return None if ref is None or ort is None else ref.s_per_image / ort.s_per_image


def _fmt(x: Optional[float]) -> str:
    return "?" if x is None else f"{x:.2f}"
