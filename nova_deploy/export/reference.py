"""What every graph of an export must compute, recorded from the PyTorch model running the
generation loop: validation compares each graph with it.

The model (fp32, its own per-scale API with F.interpolate, not the traced wrappers) runs the loop
of nova_deploy.generation on a RecordingExecutor, which hands each graph's feeds and outputs,
under the graph's tensor names, to a callback as soon as they exist. The decider of a validation
case keeps random positions (all, about half, or one token per layer), and the tokens are random
ids, so every graph sees the kinds of values it sees at run time: real conditioning, K/V prefixes
of pruned earlier scales, the previous scale's branches as caches, f_hat of varied tokens.
"""
import itertools
from dataclasses import dataclass
from typing import Callable, Dict, List, Literal, Optional, Sequence

import torch

from nova_deploy.export import vocabulary as io
from nova_deploy.export.graphs import scale_outputs
from nova_deploy.export.spec import ExportSpec, kept_range, next_input_name
from nova_deploy.generation.executor import cfg_rows
from nova_deploy.generation.loop import run_scales
from nova_deploy.generation.model_executor import ModelExecutor
from nova_deploy.models.var import VAR, ScaleOutput
from nova_deploy.nova.deciders import Decider, ScalePlan
from nova_deploy.sampling import SamplingParams

Level = Literal["all", "half", "one"]


@dataclass(frozen=True)
class Case:
    """One validation shape: batch size and how many tokens every prunable layer keeps."""
    batch: int
    level: Level

    def kept(self, spec: ExportSpec, si: int, layer: int) -> int:
        lo, opt, hi = kept_range(spec, si)
        if self.level == "all" or lo == hi:
            return hi
        if self.level == "one":
            return lo
        return min(max(opt + layer % 3 - 1, lo), hi)  # about half, different per layer

    def __str__(self) -> str:
        return f"batch {self.batch}, {self.level} kept"


def validation_cases(spec: ExportSpec) -> List[Case]:
    batches = sorted({1, spec.max_batch})
    levels: Sequence[Level] = ("all", "half", "one") if any(spec.prunable) else ("all",)
    return [Case(b, lv) for lv, b in itertools.product(levels, batches)]


@dataclass
class GraphRun:
    feeds: Dict[str, torch.Tensor]
    expected: Dict[str, torch.Tensor]
    sizes: Dict[str, int]


OnRun = Callable[[str, GraphRun], None]


class CaseDecider(Decider):
    """At every prunable scale, each layer keeps case.kept(...) random positions per sample."""

    def __init__(self, spec: ExportSpec, case: Case, gen: torch.Generator):
        super().__init__(batch=case.batch, patch_nums=spec.patch_nums, depth=spec.var.depth)
        self.spec, self.case, self.gen = spec, case, gen

    def _decide(self, si: int, x_BlC: torch.Tensor) -> Optional[ScalePlan]:
        if not self.spec.prune.prunable(si):
            return None
        l = self.patch_nums[si] ** 2
        kept_N = [self.case.kept(self.spec, si, i) for i in range(self.depth)]
        idx_N = [torch.stack([torch.randperm(l, generator=self.gen)[:k].sort().values for _ in range(self.batch)])
                 for k in kept_N]
        return ScalePlan(kept_N=kept_N, idx_N=idx_N, ratio_B=[0.0] * self.batch)


class RecordingExecutor(ModelExecutor):
    """The model's executor, handing each graph's feeds and outputs to on_run as it runs them."""

    def __init__(self, spec: ExportSpec, var: VAR, on_run: OnRun):
        super().__init__(var, fill_mode=spec.prune.fill_mode)
        self.spec, self.on_run = spec, on_run

    def _record(self, graph: str, feeds: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor]) -> None:
        g = self.spec.graph(graph)
        self.on_run(graph, GraphRun(feeds, expected, g.read_sizes({n: t.shape for n, t in feeds.items()})))

    def begin(self, label_B: torch.Tensor) -> torch.Tensor:
        x_BlC = super().begin(label_B)
        self._record("cond", {io.LABELS: label_B},
                     {io.ADA: self.cond.ada_NB6C, io.HEAD_ADA: self.cond.head_ada_B2C, io.X_FIRST: x_BlC})
        return x_BlC

    def run_scale(self, si: int, x_BlC: torch.Tensor, plan: Optional[ScalePlan]) -> ScaleOutput:
        g = self.spec.scale_graph(si)
        feeds = {io.X: x_BlC, io.ADA: self.cond.ada_NB6C, io.HEAD_ADA: self.cond.head_ada_B2C}
        for i in range(self.depth if si > 0 else 0):
            feeds[io.k_prefix(i)], feeds[io.v_prefix(i)] = self.kv.prefix(i)
        if self.spec.prune.prunable(si):
            l = self.patch_nums[si] ** 2
            for i in range(self.depth):
                idx = None if plan is None else plan.idx_N[i]
                feeds[io.keep_idx(i)] = cfg_rows(torch.arange(l).expand(x_BlC.shape[0] // 2, l) if idx is None else idx)
                feeds[io.attn_cache(i)], feeds[io.ffn_cache(i)] = self.prev_branches[0][i], self.prev_branches[1][i]
        out = super().run_scale(si, x_BlC, plan)
        self._record(g.name, feeds, scale_outputs(out, g.emits_branches))
        return out

    def next_input(self, si: int, h_BChw: torch.Tensor) -> Optional[torch.Tensor]:
        feeds = {io.F_HAT: self.f_hat.clone(), io.H: h_BChw}  # the update is in place
        x_next = super().next_input(si, h_BChw)
        expected = {io.F_HAT_NEXT: self.f_hat.clone()}
        if x_next is None:
            self._record("final_fhat", feeds, expected)
        else:
            self._record(next_input_name(si), feeds, {**expected, io.X_NEXT: x_next})
        return x_next

    def decode(self) -> torch.Tensor:
        f_hat = self.f_hat.clone()
        image = super().decode()
        self._record("decoder", {io.F_HAT: f_hat}, {io.IMAGE: image})
        return image


def reference_runs(spec: ExportSpec, var: VAR, case: Case, seed: int, on_run: OnRun) -> None:
    """Every graph's inputs and fp32 PyTorch outputs for one case, handed to on_run in the order
    the runtime calls the graphs. Each run is handed over and dropped before the next is made, so
    what stays alive is the model's state between scales, not every graph's tensors (holding a
    whole d16 batch-8 case took 5.7 GB; docs/EXPORT.md, memory)."""
    gen = torch.Generator().manual_seed(seed)
    B = case.batch
    labels = torch.randint(0, var.num_classes, (B,), generator=gen)
    tokens = [torch.randint(0, spec.vae.vocab_size, (B, pn * pn), generator=gen) for pn in spec.patch_nums]
    executor = RecordingExecutor(spec, var, on_run)
    with torch.no_grad():
        run_scales(executor, labels, torch.Generator().manual_seed(seed), SamplingParams(), CaseDecider(spec, case, gen),
                   observe=False, forced_idx=tokens)
