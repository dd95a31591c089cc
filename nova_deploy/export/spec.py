"""The export spec: every graph's inputs and outputs, declared once.

One declaration per graph (name -> dtype, shape with named symbolic dims, and min/opt/max per
dim) drives the torch.onnx export's `dynamic_shapes`, the validation (names, dtypes, shapes, the
shapes it runs at) and, later, the TensorRT optimization profiles (`GraphSpec.profile`).

Graphs of a model with K scales (batch2 = 2 * batch: CFG rows, conditional then null class):

  cond            label_B [batch] -> ada_NB6C [depth, batch2, 6, C], head_ada_B2C [batch2, 2, C],
                  x_first_BlC [batch2, first_l, C]
  scale_XX        one scale through every block and the head (see `_scale_graph`)
  next_input_XX   (si < K-1) f_hat + bicubic-upsampled, Phi-refined h of scale si; the next
                  scale's input tokens from its area-downsampled f_hat
  final_fhat      the last scale's f_hat update (Phi on h, no resampling)
  decoder         f_hat -> image in [-1, 1]

Dims whose range is a single value are static (written as ints): a scale that can never be
pruned has a fixed token count, and with --max-batch 1 the batch is fixed too. A derived dim
(batch2, the CFG rows) declares its base and factor, so that every reader derives it the same way.
Tensor names and element types come from `vocabulary`.
"""
import math
import numbers
from dataclasses import dataclass, field, replace
from typing import Dict, Literal, Mapping, Optional, Sequence, Tuple, Union

import torch

from nova_deploy.errors import InvalidArgument, require
from nova_deploy.export import vocabulary as io
from nova_deploy.export.vocabulary import ELEMENT_TYPES, PRECISION_ELEMENT_TYPE, PRECISIONS, ElementType
from nova_deploy.models.presets import VARConfig, VQVAEConfig
from nova_deploy.nova.config import NovaConfig
from nova_deploy.resample import check_mode

# LayerNormalization is opset 17 and the torch exporter's op library is written for opset 18;
# the exporter translates at most to opset 23.
MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 18, 23, 18
BATCH, CFG_ROWS = "batch", "batch2"  # the dims of images per call and of their CFG rows
DEFAULT_FILL_MODE = "bicubic"  # how pruning fills are resampled from the previous scale (the policies' default)

# The role of a tensor selects its row in the tolerance table (validate.TOLERANCES).
Role = Literal["labels", "cond", "tokens", "kv", "index", "cache", "logits", "branch", "fhat", "embed", "image"]
GraphKind = Literal["cond", "scale", "next_input", "final_fhat", "decoder"]
Shape = Tuple[Union[int, str], ...]


@dataclass(frozen=True)
class Dim:
    """A symbolic dimension: the range the graph must accept and the size engines optimise for."""
    name: str
    min: int
    opt: int
    max: int
    note: str = ""  # where the range comes from, for the manifest and for error messages
    base: str = ""  # a derived dim equals factor x base (batch2 = 2 x batch), whether or not base is in the graph
    factor: int = 1

    def check(self, graph: str) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise InvalidArgument(
                f"graph {graph}: the profile of dim {self.name} is empty or inverted "
                f"(min {self.min}, opt {self.opt}, max {self.max}; needs 1 <= min <= opt <= max)"
                + (f"; {self.note}" if self.note else ""))

    def to_json(self) -> dict:
        raw = {"min": self.min, "opt": self.opt, "max": self.max, "note": self.note}
        if self.base:
            raw["derived"] = {"base": self.base, "factor": self.factor}
        return raw


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # ONNX element type name: float32, float16, bfloat16, int64
    shape: Shape  # ints are static; strings name a Dim of the graph
    role: Role

    @property
    def element(self) -> ElementType:
        return ELEMENT_TYPES[self.dtype]

    @property
    def torch_dtype(self) -> torch.dtype:
        return self.element.torch

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "role": self.role}


@dataclass(frozen=True)
class GraphSpec:
    name: str  # file stem: <name>.onnx
    kind: GraphKind
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    dims: Tuple[Dim, ...]  # every symbolic dim used by an input or output
    si: Optional[int] = None  # the scale, for per-scale graphs

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"

    @property
    def emits_branches(self) -> bool:
        """A scale graph whose next scale is prunable: it outputs each layer's branch caches."""
        return any(t.role == "branch" for t in self.outputs)

    def dim(self, name: str) -> Dim:
        for d in self.dims:
            if d.name == name:
                return d
        raise KeyError(f"{self.name} has no dim {name!r}")

    def tensor(self, name: str) -> TensorSpec:
        for t in self.inputs + self.outputs:
            if t.name == name:
                return t
        raise KeyError(f"{self.name} has no tensor {name!r}")

    def shape_at(self, t: TensorSpec, sizes: Dict[str, int]) -> Tuple[int, ...]:
        """Concrete shape of t for the given symbolic dim sizes."""
        return tuple(d if isinstance(d, int) else sizes[d] for d in t.shape)

    def read_sizes(self, shapes: Mapping[str, Sequence[int]]) -> Dict[str, int]:
        """The size of every symbolic dim, read from the inputs' shapes (all inputs present);
        InvalidArgument naming the first input of the wrong rank or size, or outside a range."""
        sizes: Dict[str, int] = {}
        for t in self.inputs:
            shape = tuple(shapes[t.name])
            if len(shape) != len(t.shape):
                raise InvalidArgument(f"graph {self.name}: input {t.name} has shape {shape}, "
                                      f"the graph takes rank {len(t.shape)} {list(t.shape)}")
            for axis, (got, dim) in enumerate(zip(shape, t.shape)):
                if isinstance(dim, int):
                    if got != dim:
                        raise InvalidArgument(f"graph {self.name}: input {t.name} axis {axis} is {got}, "
                                              f"the graph takes {dim}")
                    continue
                if dim in sizes and sizes[dim] != got:
                    raise InvalidArgument(f"graph {self.name}: input {t.name} axis {axis} ({dim}) is {got}, "
                                          f"but {dim} is {sizes[dim]} in another input")
                d = self.dim(dim)
                if not d.min <= got <= d.max:
                    raise InvalidArgument(f"graph {self.name}: input {t.name} axis {axis} ({dim}) is {got}, "
                                          f"outside the exported range {d.min}..{d.max}"
                                          + (f" ({d.note})" if d.note else ""))
                sizes[dim] = got
        return self.complete_sizes(sizes)

    def complete_sizes(self, sizes: Dict[str, int]) -> Dict[str, int]:
        """sizes with every derived dim and its base filled in from whichever of the two is known;
        InvalidArgument when both are known and disagree."""
        out = dict(sizes)
        for d in self.dims:
            if not d.base:
                continue
            if d.name not in out and d.base in out:
                out[d.name] = d.factor * out[d.base]
            elif d.name in out and d.base not in out:
                out[d.base] = out[d.name] // d.factor
            if d.name in out and (out[d.name] != d.factor * out[d.base]):
                raise InvalidArgument(f"graph {self.name}: {d.name} ({out[d.name]}) must be {d.factor} x "
                                      f"{d.base} ({out[d.base]})" + (f" ({d.note})" if d.note else ""))
        return out

    def sizes(self, which: Literal["min", "opt", "max"]) -> Dict[str, int]:
        return {d.name: getattr(d, which) for d in self.dims}

    def profile(self) -> Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]]:
        """TensorRT optimization profile: input name -> (min, opt, max) shapes.

        Each dim is bounded independently; a combination the runtime never produces (e.g. a K/V
        prefix longer than the kept tokens of earlier scales allow) is still inside the profile.
        """
        lo, opt, hi = self.sizes("min"), self.sizes("opt"), self.sizes("max")
        return {t.name: (self.shape_at(t, lo), self.shape_at(t, opt), self.shape_at(t, hi)) for t in self.inputs}

    def to_json(self) -> dict:
        return {"file": self.file, "kind": self.kind, "scale": self.si,
                "inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
                "dims": {d.name: d.to_json() for d in self.dims}}


@dataclass(frozen=True)
class PruneRange:
    """Which token counts the scale graphs accept; the runtime's policy must stay inside it.

    first_scale: the earliest scale that may be pruned (default: NOVA's min_activation_scale);
        scales before it are exported with static token counts. The model's scale count means
        "no scale is prunable" (a dense-only export).
    min_keep_fraction: the fewest tokens a layer may keep at a prunable scale, as a fraction of
        the scale's tokens (rounded up, at least 1 token). 0 accepts down to one token.
    """
    first_scale: int = NovaConfig().min_activation_scale
    min_keep_fraction: float = 0.0
    fill_mode: str = DEFAULT_FILL_MODE  # the resampling of the previous scale's branches into pruned tokens

    def __post_init__(self):
        ok = isinstance(self.first_scale, numbers.Integral) and not isinstance(self.first_scale, bool)
        require(ok and self.first_scale >= 1,
                f"prune first_scale must be an integer >= 1 (scale 0 has no previous scale to fill pruned "
                f"tokens from), got {self.first_scale!r}")
        f = self.min_keep_fraction
        ok = isinstance(f, numbers.Real) and not isinstance(f, bool) and math.isfinite(f)
        require(ok and f >= 0, f"prune min_keep_fraction must be a number >= 0, got {f!r}")
        check_mode(self.fill_mode, "prune fill_mode")

    def prunable(self, si: int) -> bool:
        return si >= self.first_scale

    def min_kept(self, n_tokens: int) -> int:
        # may exceed n_tokens for a fraction > 1: the profile check reports that as an empty range
        return max(1, math.ceil(self.min_keep_fraction * n_tokens - 1e-9))

    def to_json(self) -> dict:
        return {"first_scale": self.first_scale, "min_keep_fraction": self.min_keep_fraction,
                "upsample_mode": self.fill_mode}


@dataclass(frozen=True)
class ExportSpec:
    var: VARConfig
    vae: VQVAEConfig
    precision: str
    max_batch: int
    prune: PruneRange
    opset: int
    graphs: Tuple[GraphSpec, ...] = field(default=())

    @property
    def patch_nums(self) -> Tuple[int, ...]:
        return tuple(self.var.patch_nums)

    @property
    def num_scales(self) -> int:
        return len(self.var.patch_nums)

    @property
    def prunable(self) -> Tuple[bool, ...]:
        return tuple(self.prune.prunable(si) for si in range(self.num_scales))

    @property
    def activation_dtype(self) -> str:
        return self.activation_element.name

    @property
    def activation_element(self) -> ElementType:
        return PRECISION_ELEMENT_TYPE[self.precision]

    def graph(self, name: str) -> GraphSpec:
        for g in self.graphs:
            if g.name == name:
                return g
        raise KeyError(f"no graph {name!r}; graphs: {', '.join(g.name for g in self.graphs)}")

    def scale_graph(self, si: int) -> GraphSpec:
        return self.graph(scale_name(si))

    def to_json(self) -> dict:
        return {"precision": self.precision, "activation_dtype": self.activation_dtype, "max_batch": self.max_batch,
                "opset": self.opset, "prune_range": self.prune.to_json(),
                "scales": {"patch_nums": list(self.patch_nums), "tokens": [pn * pn for pn in self.patch_nums],
                           "prunable": list(self.prunable)},
                "graphs": {g.name: g.to_json() for g in self.graphs}}


def scale_name(si: int) -> str:
    return f"scale_{si:02d}"


def next_input_name(si: int) -> str:
    return f"next_input_{si:02d}"


# ---------------------------------------------------------------------------------- building
class _Dims:
    """Collects the dims of one graph; a dim with a single-value range becomes a static int."""

    def __init__(self):
        self.used: Dict[str, Dim] = {}

    def __call__(self, name: str, lo: int, opt: int, hi: int, note: str = "", base: str = "",
                 factor: int = 1) -> Union[int, str]:
        if lo == hi:
            return lo
        self.used[name] = Dim(name, lo, opt, hi, note, base, factor)
        return name

    def all(self) -> Tuple[Dim, ...]:
        return tuple(self.used.values())


def _check_int(name: str, value, low: int, high: Optional[int] = None) -> None:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low
    ok = ok and (high is None or value <= high)
    rng = f"{low}..{high}" if high is not None else f">= {low}"
    require(ok, f"{name} must be an integer in {rng}, got {value!r}")


def build_spec(var: VARConfig, vae: VQVAEConfig, precision: str = "fp32", max_batch: int = 8,
               prune: PruneRange = PruneRange(), opset: int = DEFAULT_OPSET) -> ExportSpec:
    """The spec of every graph of a model; InvalidArgument naming the value and its valid range."""
    require(precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    _check_int("max_batch", max_batch, 1)
    require(isinstance(opset, numbers.Integral) and not isinstance(opset, bool),
            f"opset must be an integer, got {opset!r}")
    require(opset >= MIN_OPSET, f"opset {opset} is below {MIN_OPSET}, the lowest these graphs need "
                                f"(LayerNormalization is opset 17; the torch exporter emits opset-18 ops)")
    require(opset <= MAX_OPSET, f"opset {opset} is above {MAX_OPSET}, the highest the torch exporter writes")
    K = len(var.patch_nums)
    require(prune.first_scale <= K, f"prune first_scale {prune.first_scale} is beyond the model's {K} scales "
                                    f"(valid: 1..{K - 1}, or {K} for no pruning)")
    spec = ExportSpec(var=var, vae=vae, precision=precision, max_batch=int(max_batch), prune=prune, opset=int(opset))
    graphs = [_cond_graph(spec)]
    graphs += [_scale_graph(spec, si) for si in range(K)]
    graphs += [_next_input_graph(spec, si) for si in range(K - 1)]
    graphs += [_final_fhat_graph(spec), _decoder_graph(spec)]
    for g in graphs:
        for d in g.dims:
            d.check(g.name)
    return replace(spec, graphs=tuple(graphs))


def _batch_dims(spec: ExportSpec, dims: _Dims) -> Tuple[Union[int, str], Union[int, str]]:
    n = spec.max_batch
    b = dims(BATCH, 1, n, n, "images per call: 1..--max-batch")
    b2 = dims(CFG_ROWS, 2, 2 * n, 2 * n, "CFG rows = 2 * batch (conditional, then null class)", base=BATCH, factor=2)
    return b, b2


def kept_range(spec: ExportSpec, si: int) -> Tuple[int, int, int]:
    """(min, opt, max) tokens a layer computes at scale si; opt: about half (NOVA's typical late scales)."""
    n = spec.patch_nums[si] ** 2
    if not spec.prune.prunable(si):
        return n, n, n
    lo = spec.prune.min_kept(n)
    return lo, min(max(math.ceil(n / 2), lo), n), n


def prefix_range(spec: ExportSpec, si: int) -> Tuple[int, int, int]:
    """(min, opt, max) K/V prefix length of a layer at scale si: the kept tokens of scales 0..si-1."""
    ranges = [kept_range(spec, s) for s in range(si)]
    return tuple(sum(r[j] for r in ranges) for j in range(3))


def _cond_graph(spec: ExportSpec) -> GraphSpec:
    dims = _Dims()
    b, b2 = _batch_dims(spec, dims)
    v, a = spec.var, spec.activation_dtype
    first_l = spec.patch_nums[0] ** 2
    return GraphSpec(
        name="cond", kind="cond",
        inputs=(TensorSpec(io.LABELS, "int64", (b,), "labels"),),
        outputs=(TensorSpec(io.ADA, a, (v.depth, b2, 6, v.embed_dim), "cond"),
                 TensorSpec(io.HEAD_ADA, a, (b2, 2, v.embed_dim), "cond"),
                 TensorSpec(io.X_FIRST, a, (b2, first_l, v.embed_dim), "tokens")),
        dims=_only(dims, BATCH, CFG_ROWS))


def _only(dims: _Dims, *names: str) -> Tuple[Dim, ...]:
    return tuple(d for d in dims.all() if d.name in names)


def _scale_graph(spec: ExportSpec, si: int) -> GraphSpec:
    """Inputs: x_BlC, ada_NB6C, head_ada_B2C; for si > 0 per layer i k_prefix_i, v_prefix_i; at a
    prunable scale per layer keep_idx_i (sorted kept positions, all positions = dense) and
    attn_cache_i, ffn_cache_i (the previous scale's branch outputs, upsampled in the graph to
    fill the pruned tokens). Outputs: logits_BlV (raw 2B rows, fp32), per layer k_new_i, v_new_i
    (kept tokens only) and, when the next scale is prunable, attn_branch_i, ffn_branch_i."""
    v, a = spec.var, spec.activation_dtype
    C, H, c, N = v.embed_dim, v.num_heads, v.embed_dim // v.num_heads, v.depth
    K = spec.num_scales
    dims = _Dims()
    _, b2 = _batch_dims(spec, dims)
    l = spec.patch_nums[si] ** 2
    inputs = [TensorSpec(io.X, a, (b2, l, C), "tokens"), TensorSpec(io.ADA, a, (N, b2, 6, C), "cond"),
              TensorSpec(io.HEAD_ADA, a, (b2, 2, C), "cond")]
    outputs = [TensorSpec(io.LOGITS, "float32", (b2, l, spec.vae.vocab_size), "logits")]
    p_lo, p_opt, p_hi = prefix_range(spec, si)
    k_lo, k_opt, k_hi = kept_range(spec, si)
    prefix_note = "K/V tokens of earlier scales (fewer once an earlier scale was pruned)"
    kept_note = (f"tokens this layer computes: min from --min-keep ({spec.prune.min_keep_fraction}) "
                 f"at a prunable scale, max all {l}")
    for i in range(N):
        if si > 0:
            p = dims(f"prefix_{i}", p_lo, p_opt, p_hi, prefix_note)
            inputs += [TensorSpec(io.k_prefix(i), a, (b2, H, p, c), "kv"),
                       TensorSpec(io.v_prefix(i), a, (b2, H, p, c), "kv")]
    kept = [dims(f"kept_{i}", k_lo, k_opt, k_hi, kept_note) for i in range(N)]
    if spec.prune.prunable(si):
        l_prev = spec.patch_nums[si - 1] ** 2
        for i in range(N):
            inputs += [TensorSpec(io.keep_idx(i), "int64", (b2, kept[i]), "index"),
                       TensorSpec(io.attn_cache(i), a, (b2, l_prev, C), "cache"),
                       TensorSpec(io.ffn_cache(i), a, (b2, l_prev, C), "cache")]
    for i in range(N):
        outputs += [TensorSpec(io.k_new(i), a, (b2, H, kept[i], c), "kv"),
                    TensorSpec(io.v_new(i), a, (b2, H, kept[i], c), "kv")]
    if si + 1 < K and spec.prune.prunable(si + 1):
        for i in range(N):
            outputs += [TensorSpec(io.attn_branch(i), a, (b2, l, C), "branch"),
                        TensorSpec(io.ffn_branch(i), a, (b2, l, C), "branch")]
    used = {d for t in inputs + outputs for d in t.shape if isinstance(d, str)}
    return GraphSpec(name=scale_name(si), kind="scale", si=si, inputs=tuple(inputs), outputs=tuple(outputs),
                     dims=tuple(d for d in dims.all() if d.name in used))


def _next_input_graph(spec: ExportSpec, si: int) -> GraphSpec:
    dims = _Dims()
    b, b2 = _batch_dims(spec, dims)
    Cv, P, pn = spec.vae.z_channels, spec.patch_nums[-1], spec.patch_nums[si]
    l_next = spec.patch_nums[si + 1] ** 2
    return GraphSpec(
        name=next_input_name(si), kind="next_input", si=si,
        inputs=(TensorSpec(io.F_HAT, "float32", (b, Cv, P, P), "fhat"),
                TensorSpec(io.H, "float32", (b, Cv, pn, pn), "embed")),
        outputs=(TensorSpec(io.F_HAT_NEXT, "float32", (b, Cv, P, P), "fhat"),
                 TensorSpec(io.X_NEXT, spec.activation_dtype, (b2, l_next, spec.var.embed_dim), "tokens")),
        dims=_only(dims, BATCH, CFG_ROWS))


def _final_fhat_graph(spec: ExportSpec) -> GraphSpec:
    dims = _Dims()
    b, _ = _batch_dims(spec, dims)
    Cv, P = spec.vae.z_channels, spec.patch_nums[-1]
    return GraphSpec(
        name="final_fhat", kind="final_fhat", si=spec.num_scales - 1,
        inputs=(TensorSpec(io.F_HAT, "float32", (b, Cv, P, P), "fhat"),
                TensorSpec(io.H, "float32", (b, Cv, P, P), "embed")),
        outputs=(TensorSpec(io.F_HAT_NEXT, "float32", (b, Cv, P, P), "fhat"),),
        dims=_only(dims, BATCH))


def _decoder_graph(spec: ExportSpec) -> GraphSpec:
    dims = _Dims()
    b, _ = _batch_dims(spec, dims)
    Cv, P, size = spec.vae.z_channels, spec.patch_nums[-1], spec.vae.image_size
    return GraphSpec(
        name="decoder", kind="decoder",
        inputs=(TensorSpec(io.F_HAT, "float32", (b, Cv, P, P), "fhat"),),
        outputs=(TensorSpec(io.IMAGE, "float32", (b, 3, size, size), "image"),),
        dims=_only(dims, BATCH))
