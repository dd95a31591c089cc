"""A benchmark run: resolve policies, open and prepare every runner (one that cannot run here is
named with its reason and left out), run the interleaved schedule, probe memory, measure quality
(reference model only), summarise, check the targets."""
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from nova_deploy.bench.configs import NOVA_FIXED, REFERENCE, TORCH_COMPILE, Config, build_configs
from nova_deploy.bench.memory import Memory, probe
from nova_deploy.bench.nova_ratios import NovaRatios, nova_reference_ratios
from nova_deploy.bench.quality import Quality, measure_quality
from nova_deploy.bench.runner_by_name import open_runner
from nova_deploy.bench.runners import Sample
from nova_deploy.bench.schedule import interleaved
from nova_deploy.bench.stats import Stat, per_scale_stats, ratio, stat
from nova_deploy.errors import BackendUnavailable, InvalidArgument
from nova_deploy.nova.model_defaults import resolve_policy_text
from nova_deploy.nova.policy import Policy, parse_policy
from nova_deploy.runtime.policy_fit import check_policy_fits
from nova_deploy.sampling import SamplingParams
from nova_deploy.threads import torch_threads


@dataclass
class BenchOptions:
    runners: List[str]
    policies: List[str]
    batches: List[int]
    reference: bool = True
    warmup: int = 1
    repeat: int = 5
    seed: int = 0
    params: SamplingParams = field(default_factory=SamplingParams)
    threads: Optional[int] = None
    device: str = "cpu"
    memory: str = "all"
    quality_samples: int = 64
    nova_samples: int = 20


@dataclass
class ConfigResult:
    config: Config
    policy_resolved: str  # the policy as run (fixed:nova-ref -> its ratios)
    samples: List[Sample]
    memory: Optional[Memory] = None
    # filled by summarise()
    stats: Dict[str, Stat] = field(default_factory=dict)
    per_scale: List[Stat] = field(default_factory=list)
    flops_dense: int = 0
    flops_pruned: int = 0
    speedup_e2e: Optional[float] = None  # same runner's dense config / this, median wall time
    # the peers' median wall time / this one's, same batch: the reference sampler (dense, the
    # official algorithm, whatever this policy) and torch-compile (same policy); None where not run
    vs_reference: Optional[float] = None
    vs_torch_compile: Optional[float] = None
    speedup_transformer: Optional[float] = None
    realised_over_flop: Optional[float] = None

    @property
    def flop_reduction(self) -> float:
        return self.flops_dense / self.flops_pruned

    @property
    def s_per_image(self) -> float:
        return self.stats["wall_s"].median / self.config.batch

    @property
    def images_per_s(self) -> float:
        return self.config.batch / self.stats["wall_s"].median

    def to_json(self) -> dict:
        c = self.config
        return {"runner": c.runner, "policy": c.policy, "policy_resolved": self.policy_resolved, "batch": c.batch,
                "label": c.label, "images_per_s": self.images_per_s,
                "images_per_s_best": c.batch / self.stats["wall_s"].min,
                "s_per_image": self.s_per_image, "s_per_image_best": self.stats["wall_s"].min / c.batch,
                "stats": {k: v.to_json() for k, v in self.stats.items()},
                "per_scale_s": [s.to_json() for s in self.per_scale],
                "transformer_flops_per_image": {"dense": self.flops_dense, "pruned": self.flops_pruned},
                "flop_reduction": self.flop_reduction, "speedup_e2e_vs_dense": self.speedup_e2e,
                "speedup_transformer_vs_dense": self.speedup_transformer,
                "speedup_e2e_vs_reference": self.vs_reference, "speedup_e2e_vs_torch_compile": self.vs_torch_compile,
                "realised_over_flop_reduction": self.realised_over_flop,
                "memory": None if self.memory is None else self.memory.to_json(),
                "per_run_wall_s": [s.wall_s for s in self.samples]}


@dataclass
class BenchResult:
    options: BenchOptions
    export_dir: str
    model: str
    is_reference_model: bool
    num_scales: int
    order: List[str]  # the labels of the timed runs, in the order they ran
    results: List[ConfigResult]
    nova_ratios: Optional[NovaRatios] = None
    quality: Dict[str, Quality] = field(default_factory=dict)
    seconds: float = 0.0
    load_average: Dict[str, List[float]] = field(default_factory=dict)
    skipped: Dict[str, str] = field(default_factory=dict)  # runner -> why it could not run here
    compile: Dict[str, dict] = field(default_factory=dict)  # runner -> its compile_info()
    weight_bytes: Optional[int] = None  # the export's raw weight bytes (VAR and VQVAE), from its manifest

    def find(self, runner: str, policy: str, batch: int) -> Optional[ConfigResult]:
        return next((r for r in self.results if r.config == Config(runner, policy, batch)), None)


def resolve_policies(texts: Sequence[str], spec, params: SamplingParams, nova_samples: int,
                     seed: int, bundled_model: Optional[str] = None) -> (Dict[str, Policy], Optional[NovaRatios]):
    """Every policy text -> a Policy that fits the export (one-line error otherwise); `nova` on an
    export of a bundled model is that model's measured default (nova/model_defaults.py)."""
    resolved, ratios = {}, None
    for text in texts:
        if text == NOVA_FIXED:
            ratios = nova_reference_ratios(spec.patch_nums, samples=nova_samples, seed=seed, params=params)
            policy = parse_policy(ratios.fixed)
        else:
            policy = resolve_policy_text(text, bundled_model)[0]
        try:
            check_policy_fits(policy, spec)
        except InvalidArgument as e:
            raise InvalidArgument(f"policy {text}: {e}") from None
        resolved[text] = policy
    return resolved, ratios


def is_bundled_model(export) -> bool:
    """Whether the export holds one of the bundled reference models (same fingerprint): quality is
    measured only there."""
    from nova_deploy.export.manifest import model_fingerprint
    from nova_deploy.model_source import BUNDLED_MODELS, resolve_models

    for name, model in BUNDLED_MODELS.items():
        if model.available():
            models = resolve_models(None, None, None, model=name)
            if model_fingerprint(models.var, models.vae) == export.fingerprint:
                return True
    return False


def summarise(results: List[ConfigResult]) -> None:
    for r in results:
        s = r.samples
        r.stats = {"wall_s": stat([x.wall_s for x in s]), "transformer_s": stat([x.transformer_s for x in s]),
                   "decoder_s": stat([x.decoder_s for x in s]), "outside_s": stat([x.outside_s for x in s]),
                   "outside_fraction": stat([x.outside_s / x.wall_s for x in s])}
        r.per_scale = per_scale_stats([x.per_scale_s for x in s])
        r.flops_dense = s[0].flops_dense
        r.flops_pruned = round(sum(x.flops_pruned for x in s) / len(s))
    for r in results:
        dense = next((d for d in results if d.config == Config(r.config.runner, "none", r.config.batch)), None)
        if dense is None:
            continue
        r.speedup_e2e = ratio(dense.stats["wall_s"].median, r.stats["wall_s"].median)
        r.speedup_transformer = ratio(dense.stats["transformer_s"].median, r.stats["transformer_s"].median)
        r.realised_over_flop = ratio(r.speedup_transformer, r.flop_reduction)
    for r in results:
        c = r.config
        peers = {REFERENCE: Config(REFERENCE, "none", c.batch), TORCH_COMPILE: Config(TORCH_COMPILE, c.policy, c.batch)}
        wall = {name: next((p.stats["wall_s"].median for p in results if p.config == peer and p is not r), None)
                for name, peer in peers.items()}
        r.vs_reference = ratio(wall[REFERENCE], r.stats["wall_s"].median)
        r.vs_torch_compile = ratio(wall[TORCH_COMPILE], r.stats["wall_s"].median)


def load_average() -> List[float]:
    try:
        import os

        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def run_bench(export_dir, opt: BenchOptions, log: Callable[[str], None] = lambda s: None) -> BenchResult:
    """opt.threads: torch's thread count during the run (the reference sampler and the torch backend
    run on it); the caller's count is restored after it."""
    with torch_threads(opt.threads or None):
        return _run_bench(export_dir, opt, log)


def _run_bench(export_dir, opt: BenchOptions, log: Callable[[str], None]) -> BenchResult:
    from nova_deploy.export.manifest import open_export

    t_start = time.perf_counter()
    loads = {"start": load_average()}
    export = open_export(export_dir)
    spec = export.spec
    for b in opt.batches:
        if not 1 <= b <= spec.max_batch:
            raise InvalidArgument(f"--batch {b}: this export takes 1..{spec.max_batch} images per call "
                                  f"(re-export with --max-batch {b} for more)")
    policies, ratios = resolve_policies(opt.policies, spec, opt.params, opt.nova_samples, opt.seed,
                                        export.manifest["model"]["source"].get("bundled_model"))
    if ratios is not None:
        log(f"{NOVA_FIXED} = {ratios.fixed} (NOVA's mean ratios over {ratios.samples} reference-model samples)")
    configs = build_configs(opt.runners, opt.policies, opt.batches, opt.reference)
    runners, skipped = open_runners(configs, export, opt, policies, log)
    configs = [c for c in configs if c.runner in runners]
    results = {c: ConfigResult(c, policies[c.policy].to_text(), []) for c in configs}
    order = []
    steps = interleaved(configs, opt.warmup, opt.repeat)
    for i, step in enumerate(steps):
        c = step.config
        sample = runners[c.runner].run(c.batch, policies[c.policy], opt.seed, opt.params)
        if step.timed:
            results[c].samples.append(sample)
            order.append(c.label)
        log(f"[{i + 1}/{len(steps)}] {'round ' + str(step.round + 1) if step.timed else 'warm-up'} "
            f"{c.label}: {sample.wall_s:.3f} s")
    loads["after_timing"] = load_average()
    compile_info = {n: info for n, info in ((n, r.compile_info()) for n, r in runners.items()) if info is not None}
    for n, info in compile_info.items():
        if info["graphs_in_timed_runs"]:
            log(f"warning: {n} compiled {info['graphs_in_timed_runs']} graph(s) during timed runs: its times "
                f"include compilation")
    quality = {}
    reference_model = is_bundled_model(export)
    if reference_model and opt.quality_samples > 0:
        qname = next((n for n in ("onnxruntime", "onnxruntime-prepack") if n in runners),
                     next(iter(runners)))
        qbatch = min(spec.max_batch, 8)
        log(f"quality: {opt.quality_samples} samples per policy on {qname}, batch {qbatch}")
        quality = measure_quality(runners[qname], policies, opt.quality_samples, qbatch, opt.seed, opt.params)
    for r in runners.values():
        r.close()
    if opt.memory != "off":
        for c in configs:
            if opt.memory == "dense" and c.policy != "none":
                continue
            results[c].memory = probe(export.path, c.runner, results[c].policy_resolved, c.batch, opt.device,
                                      opt.threads, opt.seed, opt.params)
            log(f"memory {c.label}: peak RSS {results[c].memory.peak_rss_mb:.0f} MB")
    loads["end"] = load_average()
    out = list(results.values())
    summarise(out)
    return BenchResult(options=opt, export_dir=str(export.path), model=export.description,
                       weight_bytes=export.manifest.get("weights", {}).get("raw_weight_bytes"),
                       is_reference_model=reference_model, num_scales=spec.num_scales, order=order, results=out,
                       nova_ratios=ratios, quality=quality, seconds=time.perf_counter() - t_start,
                       load_average=loads, skipped=skipped, compile=compile_info)


def open_runners(configs: Sequence[Config], export, opt: BenchOptions, policies: Dict[str, Policy],
                 log: Callable[[str], None]):
    """({name: runner} opened and prepared, {name: why not}): a runner that cannot run here
    (BackendUnavailable: a library, a device or a compiler missing) is named in one line and the
    others run; if none can, the reasons are the error."""
    runners, skipped = {}, {}
    for name in dict.fromkeys(c.runner for c in configs):
        t0 = time.perf_counter()
        runner = None
        try:
            runner = open_runner(name, export, opt.device, opt.threads)
            jobs = [(c.batch, policies[c.policy]) for c in configs if c.runner == name]
            runner.prepare(jobs, opt.seed, opt.params)
        except BackendUnavailable as e:
            if runner is not None:
                runner.close()
            skipped[name] = " ".join(str(e).split())  # one line, whatever the library's message
            log(f"skipped runner {name}: {skipped[name]}")
            continue
        runners[name] = runner
        info = runner.compile_info()
        extra = f" (compiled {info['graphs']} graphs in {info['compile_s']:.1f} s)" if info else ""
        log(f"opened {name} in {time.perf_counter() - t0:.1f} s{extra}")
    if not runners:
        raise BackendUnavailable("no runner can run here: " + "; ".join(f"{n}: {why}" for n, why in skipped.items()))
    return runners, skipped
