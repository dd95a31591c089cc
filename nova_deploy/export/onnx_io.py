"""From a graph module and its spec to .onnx files that share one weights file.

`export_graph` traces with torch.onnx.export (the dynamo exporter) and `dynamic_shapes` built
from the spec; `GraphWriter` writes each graph with every large initializer moved into one
external `weights.bin`, stored once however many graphs use it (the scale graphs all hold the
same blocks). Graph protobufs stay small, so models past the 2 GB protobuf limit export too.

Determinism: the exporter's per-node metadata (stack traces, source names) is dropped, weights
are laid out in the order the graphs first use them, and nothing depends on time or paths, so
the same checkpoint exported twice gives byte-identical files.
"""
import contextlib
import hashlib
import inspect
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import onnx
import onnx_ir as ir
import torch

from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.errors import ExportError
from nova_deploy.export import vocabulary
from nova_deploy.export.spec import GraphSpec

INLINE_MAX_BYTES = 1024  # smaller initializers (shape constants, scalars) stay inside the graph
ALIGN, BIG_ALIGN, BIG_TENSOR = 64, 65536, 1 << 20  # large tensors page-aligned, so runtimes can mmap them

# ---------------------------------------------------------------------------------- tracing
def trace_sizes(g: GraphSpec) -> Dict[str, int]:
    """Sizes to trace at: inside each range, >= 2 (torch specialises sizes 0 and 1), and away
    from the sizes validation runs at (min, about half, max), so validation tests other shapes.
    Distinct dims get distinct sizes where the ranges allow, so that no two are merged."""
    sizes: Dict[str, int] = {}
    for d in g.dims:
        if d.base in sizes:
            sizes[d.name] = d.factor * sizes[d.base]
            continue
        avoid = {d.min, d.opt - 1, d.opt, d.opt + 1, d.max} | set(sizes.values())
        lo = max(2, d.min)
        choice = next((v for v in range(d.max - 1, lo - 1, -1) if v not in avoid), None)
        if choice is None:
            choice = next((v for v in range(d.max, lo - 1, -1) if v not in set(sizes.values())), max(lo, d.max))
        if d.base:  # a derived dim whose base is not in this graph: still a multiple of its factor
            choice -= choice % d.factor
        sizes[d.name] = choice
    return sizes


def dummy_inputs(g: GraphSpec, sizes: Dict[str, int], num_classes: int, seed: int = 0) -> List[torch.Tensor]:
    """Inputs of g at the given sizes: labels in range, sorted distinct kept positions, normal floats."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in g.inputs:
        shape = g.shape_at(t, sizes)
        if t.role == "labels":
            out.append(torch.randint(0, num_classes, shape, generator=gen))
        elif t.role == "index":
            rows, k = shape
            l = g.tensor(vocabulary.X).shape[1]
            idx = torch.randperm(l, generator=gen)[:k].sort().values
            out.append(idx.expand(rows, k).contiguous())
        else:
            out.append(torch.randn(shape, generator=gen).to(t.torch_dtype))
    return out


def torch_dynamic_shapes(module: torch.nn.Module, g: GraphSpec) -> tuple:
    """`dynamic_shapes` for module.forward, which takes the inputs positionally in spec order
    (named parameters first, the rest as *args)."""
    dims = {d.name: torch.export.Dim(d.name, min=d.min, max=d.max) for d in g.dims}
    per_input = [{axis: dims[s] if isinstance(s, str) else torch.export.Dim.STATIC for axis, s in enumerate(t.shape)}
                 for t in g.inputs]
    params = list(inspect.signature(module.forward).parameters.values())
    named = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    shapes = per_input[:len(named)]
    if len(per_input) > len(named):  # torch.export sees empty *args as no argument at all
        shapes.append(tuple(per_input[len(named):]))
    return tuple(shapes)


@contextlib.contextmanager
def _quiet():
    """The exporter prints progress lines and warns about its own internals; keep the CLI readable."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript",
                                                "torch.fx.experimental.symbolic_shapes", "torch._export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_graph(module: torch.nn.Module, g: GraphSpec, example: Sequence[torch.Tensor], opset: int) -> ir.Model:
    """Trace module into an ONNX IR model whose input/output names and dims are the spec's."""
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                module, tuple(example), dynamo=True, opset_version=opset, optimize=True, verbose=False,
                input_names=[t.name for t in g.inputs], output_names=[t.name for t in g.outputs],
                dynamic_shapes=torch_dynamic_shapes(module, g))
    except Exception as e:  # the exporter raises many types; name the graph and the root cause
        raise ExportError(f"graph {g.name}: torch.onnx.export failed: {_root_cause(e)}") from e
    model = program.model
    _name_output_dims(model, g)
    _strip_metadata(model)
    model.metadata_props["nova_deploy.graph"] = g.name
    return model


def _root_cause(e: BaseException) -> str:
    """The innermost exception's first line: the exporter wraps the cause in several layers of advice."""
    while e.__cause__ is not None:
        e = e.__cause__
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0][:300]}" if lines else type(e).__name__


def _name_output_dims(model: ir.Model, g: GraphSpec) -> None:
    """Outputs carry the exporter's symbol expressions (e.g. '2*batch'); give them the spec's names.
    Only symbolic-for-symbolic: a dim the exporter made static stays as it is, for validation to report."""
    for value, t in zip(model.graph.outputs, g.outputs):
        if value.shape is None or len(value.shape) != len(t.shape):
            continue
        dims = []
        for got, want in zip(value.shape, t.shape):
            dims.append(ir.SymbolicDim(want) if isinstance(want, str) and not isinstance(got, int) else got)
        value.shape = ir.Shape(dims)


def _strip_metadata(model: ir.Model) -> None:
    model.metadata_props.clear()
    model.doc_string = None
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        node.metadata_props.clear()
        node.doc_string = None
        for v in node.outputs:
            v.metadata_props.clear()
    for v in list(model.graph.inputs) + list(model.graph.outputs) + list(model.graph.initializers.values()):
        v.metadata_props.clear()


# ---------------------------------------------------------------------------------- writing
@dataclass
class WeightsReport:
    tensors_written: int = 0  # distinct tensors in weights.bin
    tensors_referenced: int = 0  # initializers of all graphs that point into it
    bytes_written: int = 0  # size of weights.bin
    bytes_referenced: int = 0  # what the graphs would hold without sharing

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class GraphWriter:
    """Writes graphs into out_dir; large initializers go to one shared weights file, each distinct
    content once (keyed by sha256: the exporter folds weights into new constants per graph, e.g.
    transposed, so names and tensor identity do not tell that two graphs hold the same bytes)."""
    out_dir: Path
    report: WeightsReport = field(default_factory=WeightsReport)
    _offsets: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # sha256 -> (offset, length)

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        self._weights = open(self.out_dir / WEIGHTS_FILE, "wb")

    def close(self) -> None:
        self._weights.close()

    def write(self, model: ir.Model, file: str) -> Path:
        for value in model.graph.initializers.values():
            tensor = value.const_value
            if tensor is None or tensor.nbytes < INLINE_MAX_BYTES or isinstance(tensor, ir.ExternalTensor):
                continue
            offset, length = self._store(tensor.tobytes())
            value.const_value = ir.ExternalTensor(WEIGHTS_FILE, offset, length, tensor.dtype, shape=tensor.shape,
                                                  name=value.name, base_dir=self.out_dir)
        path = self.out_dir / file
        onnx.save_model(ir.serde.serialize_model(model), str(path))  # small: no weights inside
        return path

    def _store(self, data: bytes) -> Tuple[int, int]:
        digest = hashlib.sha256(data).hexdigest()
        self.report.tensors_referenced += 1
        self.report.bytes_referenced += len(data)
        if digest not in self._offsets:
            pos = self._weights.tell()
            pad = (-pos) % (BIG_ALIGN if len(data) >= BIG_TENSOR else ALIGN)
            self._weights.write(b"\0" * pad)
            self._weights.write(data)
            self._offsets[digest] = (pos + pad, len(data))
            self.report.tensors_written += 1
            self.report.bytes_written = self._weights.tell()
        return self._offsets[digest]
