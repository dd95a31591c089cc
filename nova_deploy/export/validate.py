"""Validation of an export; part of every export, and `nova-deploy validate DIR` re-runs it.

Checks, all collected before one ExportError lists every failure:
- files (re-validation): inside the directory, size and sha256 as in the manifest; the export
  against the model: configs, codebook, every stored weight (model_check);
- structure: onnx.checker; opset; input and output names, order, dtypes and shapes equal the
  spec, with no dynamic axis the spec does not declare;
- numerics: ONNX Runtime (CPU EP) against the PyTorch model (fp32, the model's own per-scale API
  with F.interpolate, not the traced wrappers) for every graph, at the shapes of `validation_cases`
  (batch 1 and max x all / about half / one kept token, which differ from the traced shapes),
  with per-output tolerances from TOLERANCES and polygraphy's comparator.

Inputs and expected outputs come from the model running the generation loop once per case
(export.reference): real conditioning, K/V prefixes of earlier scales as the pruned run produced
them, the previous scale's branch outputs as caches, and f_hat built from random token ids, so
every graph sees the values it will see at run time.
"""
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import torch

from nova_deploy.artifacts.export_dir import ExportDir
from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.errors import ExportError, NovaDeployError
from nova_deploy.export.bf16_emulation import Fp32Weights, emulate_bf16, round_to_bf16
from nova_deploy.export.model_check import export_mismatches
from nova_deploy.export.reference import Case, GraphRun, reference_runs, validation_cases
from nova_deploy.export.shared_weights import SharedWeights
from nova_deploy.export.spec import ExportSpec, GraphSpec
from nova_deploy.models.var import VAR
from nova_deploy.models.vqvae import VQVAE
from nova_deploy.ort_session import open_session

# (atol, rtol) per precision and tensor role. Every element must satisfy
#     |onnxruntime - pytorch| <= atol + rtol * max|pytorch output|
# i.e. rtol is relative to the output's peak, not to each element: a low-precision graph's error
# scales with the tensor it accumulates into, and near-zero elements carry the same absolute
# error as large ones. The reference is always the fp32 PyTorch model, so the fp16/bf16 rows bound
# the export error plus the rounding the precision leaves. VQVAE graphs (fhat, image) are fp32 at
# every precision. Worst measured errors are in the manifest (validation.errors, worst_by_role).
_FP32 = {"cond": (1e-5, 1e-4), "tokens": (1e-5, 1e-4), "fhat": (1e-5, 1e-4),
         "logits": (1e-5, 5e-4), "kv": (1e-5, 5e-4), "branch": (1e-5, 5e-4), "image": (1e-5, 5e-4)}
TOLERANCES: Dict[str, Dict[str, Tuple[float, float]]] = {
    "fp32": _FP32,
    "fp16": {**_FP32, "cond": (1e-4, 5e-3), "tokens": (1e-4, 5e-3), "logits": (1e-4, 1e-2), "kv": (1e-4, 1e-2),
             "branch": (1e-4, 1e-2)},
    "bf16": {**_FP32, "cond": (1e-3, 3e-2), "tokens": (1e-3, 3e-2), "logits": (1e-3, 5e-2), "kv": (1e-3, 5e-2),
             "branch": (1e-3, 5e-2)},
}

@dataclass(frozen=True)
class Failure:
    graph: str
    message: str
    case: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.graph}{f' [{self.case}]' if self.case else ''}: {self.message}"


@dataclass
class OutputError:
    """Worst disagreement of one output over the cases; rel_to_peak = max_abs / max |reference|."""
    max_abs: float = 0.0
    max_rel: float = 0.0
    rel_to_peak: float = 0.0
    atol: float = 0.0
    rtol: float = 0.0
    role: str = ""

    def update(self, max_abs: float, max_rel: float, peak: float) -> None:
        self.max_abs = max(self.max_abs, max_abs)
        self.max_rel = max(self.max_rel, max_rel)
        self.rel_to_peak = max(self.rel_to_peak, max_abs / peak if peak > 0 else max_abs)


@dataclass
class ValidationReport:
    precision: str
    cases: List[Case] = field(default_factory=list)
    failures: List[Failure] = field(default_factory=list)
    errors: Dict[str, Dict[str, OutputError]] = field(default_factory=dict)  # graph -> output -> worst
    backend: str = ""

    @property
    def passed(self) -> bool:
        return not self.failures

    def worst_by_role(self) -> Dict[str, dict]:
        worst: Dict[str, dict] = {}
        for graph, outs in self.errors.items():
            for name, e in outs.items():
                w = worst.get(e.role)
                if w is None or e.rel_to_peak > w["rel_to_peak"]:
                    worst[e.role] = {"graph": graph, "output": name, "max_abs": e.max_abs,
                                     "rel_to_peak": e.rel_to_peak, "atol": e.atol, "rtol": e.rtol}
        return worst

    def to_json(self) -> dict:
        return {"passed": self.passed, "backend": self.backend, "precision": self.precision,
                "cases": [str(c) for c in self.cases], "tolerances": {k: list(v) for k, v in TOLERANCES[self.precision].items()},
                "failures": [str(f) for f in self.failures], "worst_by_role": self.worst_by_role(),
                "errors": {g: {o: dict(e.__dict__) for o, e in outs.items()} for g, outs in self.errors.items()}}

    def raise_if_failed(self, where: str = "") -> None:
        if self.failures:
            shown = "\n  ".join(str(f) for f in self.failures[:40])
            more = f"\n  ... and {len(self.failures) - 40} more" if len(self.failures) > 40 else ""
            raise ExportError(f"validation failed{f' ({where})' if where else ''}: {len(self.failures)} problem(s):"
                              f"\n  {shown}{more}")


# ---------------------------------------------------------------------------------- structure
def check_structure(path: Path, g: GraphSpec, opset: int) -> List[Failure]:
    fails: List[Failure] = []
    try:
        onnx.checker.check_model(str(path))
    except Exception as e:  # checker raises ValidationError, or OSError for missing external data
        fails.append(Failure(g.name, f"onnx.checker: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"))
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        return fails + [Failure(g.name, f"cannot load {path.name}: {e}")]
    ops = {o.domain: o.version for o in model.opset_import}
    if ops.get("", None) != opset:
        fails.append(Failure(g.name, f"opset {ops.get('')} != {opset} of the spec"))
    for kind, got, want in (("input", model.graph.input, g.inputs), ("output", model.graph.output, g.outputs)):
        got_names, want_names = [v.name for v in got], [t.name for t in want]
        if got_names != want_names:
            fails.append(Failure(g.name, f"{kind} names {got_names} != spec {want_names}"))
            continue
        for v, t in zip(got, want):
            fails += _check_value(g, kind, v, t)
    return fails


def _check_value(g: GraphSpec, kind: str, v: onnx.ValueInfoProto, t) -> List[Failure]:
    tt = v.type.tensor_type
    fails = []
    if tt.elem_type != t.element.onnx:
        fails.append(Failure(g.name, f"{kind} {t.name}: dtype {onnx.TensorProto.DataType.Name(tt.elem_type)} "
                                     f"!= {t.dtype}"))
    dims = list(tt.shape.dim)
    if len(dims) != len(t.shape):
        return fails + [Failure(g.name, f"{kind} {t.name}: rank {len(dims)} != {len(t.shape)}")]
    declared = {d.name for d in g.dims}
    for axis, (d, want) in enumerate(zip(dims, t.shape)):
        got = d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        if isinstance(want, int) and isinstance(got, str):
            fails.append(Failure(g.name, f"{kind} {t.name} axis {axis}: dynamic {got!r} where the spec has "
                                         f"static {want} (undeclared dynamic axis)"))
        elif isinstance(want, int) and got != want:
            fails.append(Failure(g.name, f"{kind} {t.name} axis {axis}: size {got} != spec {want}"))
        elif isinstance(want, str) and (got != want or want not in declared):
            fails.append(Failure(g.name, f"{kind} {t.name} axis {axis}: {got!r} != spec dim {want!r}"))
    return fails


# ---------------------------------------------------------------------------------- numerics
class OrtGraph:
    """One graph in an ONNX Runtime CPU session (ort_session, as the runtime opens them; validation
    runs where no GPU is, so never on the CUDA EP); bf16 graphs run emulated (bf16_emulation)."""

    def __init__(self, path: Path, g: GraphSpec, emulate: bool, threads: int, weights: SharedWeights):
        """path: the graph, or its emulated copy (emulated_copies) when emulate; weights: the
        weights file that graph references, mapped once for all sessions."""
        self.g, self.emulate = g, emulate
        self.weights = weights  # the session reads the OrtValues it was given: they must outlive it
        # emulated graphs keep every rounding Cast the emulation inserted (no optimization)
        self.session = open_session(path, threads=threads, device="cpu", weights=weights, optimize=not emulate)

    def run(self, feeds: Dict[str, torch.Tensor]) -> Dict[str, np.ndarray]:
        arrays = {t.name: self._to_numpy(feeds[t.name], t.dtype) for t in self.g.inputs}
        outs = self.session.run([t.name for t in self.g.outputs], arrays)
        return {t.name: np.asarray(o) for t, o in zip(self.g.outputs, outs)}

    def _to_numpy(self, x: torch.Tensor, dtype: str) -> np.ndarray:
        if dtype == "int64":
            return x.to(torch.int64).numpy()
        if dtype == "bfloat16":
            return round_to_bf16(x.float().numpy()) if self.emulate else x.to(torch.bfloat16).float().numpy()
        return x.to(dtype=getattr(torch, dtype)).numpy()


def emulated_copies(out_dir: Path, graphs: Sequence[GraphSpec], work_dir: Path) -> Dict[str, Path]:
    """bf16-emulating copies of the graphs in work_dir, all referencing one fp32 weights file there
    (written once, so that sessions share it as they share the export's weights.bin)."""
    store = Fp32Weights(out_dir / WEIGHTS_FILE, work_dir / WEIGHTS_FILE)
    copies: Dict[str, Path] = {}
    try:
        for g in graphs:
            m = emulate_bf16(onnx.load(str(out_dir / g.file), load_external_data=False), store.relocate)
            copies[g.name] = work_dir / g.file
            onnx.save_model(m, str(copies[g.name]))  # weights stay in the shared file
    finally:
        store.close()
    return copies


def compare_outputs(g: GraphSpec, case: Case, got: Dict[str, np.ndarray], run: GraphRun, precision: str,
                    errors: Dict[str, OutputError]) -> List[Failure]:
    from polygraphy.comparator import SimpleCompareFunc
    from polygraphy.comparator.struct import IterationResult
    from polygraphy.logger import G_LOGGER

    fails: List[Failure] = []
    table = TOLERANCES[precision]
    ours, ref = {}, {}
    for t in g.outputs:
        want_shape = g.shape_at(t, run.sizes)
        a = np.asarray(got[t.name], dtype=np.float32)  # no copy when already fp32
        b = run.expected[t.name].detach().float().numpy()
        if a.shape != want_shape or b.shape != want_shape:
            fails.append(Failure(g.name, f"output {t.name}: shape {a.shape} (ONNX Runtime) / {b.shape} (PyTorch) "
                                         f"!= spec {want_shape}", str(case)))
            continue
        if not np.isfinite(a).all():
            fails.append(Failure(g.name, f"output {t.name}: {int((~np.isfinite(a)).sum())} non-finite values", str(case)))
            continue
        ours[t.name], ref[t.name] = a, b
    if not ours:
        return fails
    peak = {n: float(np.abs(ref[n]).max()) if ref[n].size else 0.0 for n in ours}
    bound = {n: table[g.tensor(n).role][0] + table[g.tensor(n).role][1] * peak[n] for n in ours}
    # polygraphy's elemwise check fails an element exceeding both tolerances: rtol 0 leaves the bound
    compare = SimpleCompareFunc(atol=bound, rtol={n: 0.0 for n in ours}, check_shapes=True,
                                check_error_stat="elemwise")
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL):
        results = compare(IterationResult(ours, runner_name="onnxruntime"), IterationResult(ref, runner_name="torch"))
    for name, res in results.items():
        role = g.tensor(name).role
        atol, rtol = table[role]
        e = errors.setdefault(name, OutputError(atol=atol, rtol=rtol, role=role))
        e.update(float(res.max_absdiff), float(res.max_reldiff), peak[name])
        if not bool(res):
            fails.append(Failure(g.name, f"output {name}: max abs error {float(res.max_absdiff):.3g} exceeds "
                                         f"atol + rtol * peak = {atol:g} + {rtol:g} * {peak[name]:.3g} "
                                         f"({role} tolerance, {precision})", str(case)))
    return fails


def validate_export(out_dir: Path, spec: ExportSpec, var: VAR, vae: VQVAE, export: Optional[ExportDir] = None,
                    threads: int = 1, progress: bool = False) -> ValidationReport:
    """Every check on the graphs in out_dir; never raises for a mismatch, returns them all.

    var, vae: the fp32 models the export came from. export: the directory as opened by the loader,
    when re-validating a written export: its files are checked against the manifest and the export
    against the model (model_check) before the graphs run."""
    out_dir = Path(out_dir)
    emulate = spec.precision == "bf16"
    report = ValidationReport(precision=spec.precision, cases=validation_cases(spec),
                              backend="onnxruntime CPUExecutionProvider"
                                      + (" (bf16 emulated: fp32 compute, bf16 rounding of every bf16 tensor)"
                                         if emulate else ""))
    if export is not None:
        for name in sorted(export.manifest["files"]):
            try:
                export.verify([name])
            except NovaDeployError as e:
                report.failures.append(Failure(name, str(e)))
        report.failures += [Failure(what, message) for what, message in export_mismatches(export, spec, var, vae)]

    with tempfile.TemporaryDirectory(prefix="nova-validate-") as work:
        sessions = _load_sessions(out_dir, spec, report, threads, Path(work) if emulate else None, progress)
        _run_cases(spec, var, sessions, report, progress)
    return report


class Sessions:
    """The ONNX Runtime session of every loadable graph. fp16 graphs are opened for each run and
    closed after it: the CPU EP has few fp16 kernels, so each fp16 session holds fp32 copies of the
    weights its inserted casts read (bundled model: 105 MB for the scale sessions against 26 MB at
    fp32; the d16 fp16 export peaked at 17.5 GB with all of them open). fp32 and emulated-bf16
    sessions read the one shared weights file and stay open."""

    def __init__(self, threads: int, weights: Optional[SharedWeights], emulate: bool, keep_open: bool):
        self.threads, self.weights, self.emulate, self.keep_open = threads, weights, emulate, keep_open
        self._paths: Dict[str, Tuple[Path, GraphSpec]] = {}
        self._open: Dict[str, OrtGraph] = {}

    def load(self, name: str, path: Path, g: GraphSpec) -> None:
        """Open the graph's session once (raising what ONNX Runtime raises); keep it if keep_open."""
        session = OrtGraph(path, g, self.emulate, self.threads, self.weights)
        self._paths[name] = (path, g)
        if self.keep_open:
            self._open[name] = session

    def __contains__(self, name: str) -> bool:
        return name in self._paths

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def open_count(self) -> int:
        """Sessions held between runs."""
        return len(self._open)

    def spec(self, name: str) -> GraphSpec:
        return self._paths[name][1]

    def run(self, name: str, feeds: Dict[str, torch.Tensor]) -> Dict[str, np.ndarray]:
        session = self._open.get(name)
        if session is None:
            path, g = self._paths[name]
            session = OrtGraph(path, g, self.emulate, self.threads, self.weights)
        return session.run(feeds)


def _load_sessions(out_dir: Path, spec: ExportSpec, report: ValidationReport, threads: int,
                   emulate_dir: Optional[Path], progress: bool) -> Sessions:
    """Structure checks and an ONNX Runtime session per graph; failures go to the report."""
    from tqdm import tqdm

    present = []
    for g in spec.graphs:
        path = out_dir / g.file
        if not path.is_file():
            report.failures.append(Failure(g.name, f"{g.file} missing"))
            continue
        report.failures += check_structure(path, g, spec.opset)
        present.append(g)
    if not (out_dir / WEIGHTS_FILE).is_file():
        report.failures += [Failure(g.name, f"ONNX Runtime cannot load it: {WEIGHTS_FILE} missing") for g in present]
        present = []
    paths = {g.name: out_dir / g.file for g in present}
    weights_dir = out_dir
    if emulate_dir is not None and present:
        try:
            paths = emulated_copies(out_dir, present, emulate_dir)
            weights_dir = emulate_dir
        except Exception as e:  # a graph onnx cannot load or an initializer outside weights.bin
            report.failures.append(Failure("bf16 emulation", f"cannot build the emulated graphs: {str(e).strip()[:300]}"))
            present = []
    weights = SharedWeights(weights_dir / WEIGHTS_FILE) if present else None
    sessions = Sessions(threads, weights, emulate_dir is not None, keep_open=spec.precision != "fp16")
    for g in tqdm(present, desc="validate: load", unit="graph", leave=False, disable=not progress):
        try:
            sessions.load(g.name, paths[g.name], g)
        except Exception as e:  # ORT raises its own exception types for unloadable graphs
            report.failures.append(Failure(g.name, f"ONNX Runtime cannot load it: {str(e).strip()[:300]}"))
    return sessions


def _run_cases(spec: ExportSpec, var: VAR, sessions: Sessions, report: ValidationReport, progress: bool) -> None:
    """Every case through every loaded graph, each run compared as soon as the reference made it."""
    from tqdm import tqdm

    total = len(report.cases) * len(sessions)
    with tqdm(total=total, desc="validate: run", unit="graph", leave=False, disable=not progress) as bar:
        for n, case in enumerate(report.cases):
            def compare(name: str, run: GraphRun, case=case) -> None:
                if name not in sessions:
                    return
                try:
                    got = sessions.run(name, run.feeds)
                except Exception as e:
                    report.failures.append(Failure(name, f"ONNX Runtime failed: {str(e).strip()[:300]}", str(case)))
                else:
                    errs = report.errors.setdefault(name, {})
                    report.failures += compare_outputs(sessions.spec(name), case, got, run, spec.precision, errs)
                bar.update(1)

            reference_runs(spec, var, case, seed=n, on_run=compare)
