"""The export spec: one declaration per graph; its dims, ranges and profiles follow the model and
the pruning range, and bad options are refused with the valid range."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nova_deploy.errors import InvalidArgument
from nova_deploy.export.onnx_io import trace_sizes
from nova_deploy.export.spec import MIN_OPSET, PruneRange, build_spec, kept_range, prefix_range
from nova_deploy.export.validate import Case, validation_cases
from nova_deploy.models.presets import get_preset
from export_sources import one_thread  # noqa: F401  (autouse fixture)

SMALL = get_preset("small")
K = len(SMALL.var.patch_nums)


def spec_for(**kw):
    return build_spec(SMALL.var, SMALL.vae, **kw)


def test_graph_set_and_names():
    spec = spec_for()
    names = [g.name for g in spec.graphs]
    assert names == (["cond"] + [f"scale_{si:02d}" for si in range(K)] + [f"next_input_{si:02d}" for si in range(K - 1)]
                     + ["final_fhat", "decoder"])
    cond = spec.graph("cond")
    assert [t.name for t in cond.inputs] == ["label_B"]
    assert [t.name for t in cond.outputs] == ["ada_NB6C", "head_ada_B2C", "x_first_BlC"]
    assert cond.tensor("ada_NB6C").shape == (SMALL.var.depth, "batch2", 6, SMALL.var.embed_dim)


@settings(max_examples=40, deadline=None)
@given(first=st.integers(1, K), frac=st.floats(0.0, 1.0), max_batch=st.integers(1, 16))
def test_dims_follow_the_prune_range(first, frac, max_batch):
    spec = spec_for(prune=PruneRange(first_scale=first, min_keep_fraction=frac), max_batch=max_batch)
    N, C, H = SMALL.var.depth, SMALL.var.embed_dim, SMALL.var.num_heads
    for si, pn in enumerate(SMALL.var.patch_nums):
        g = spec.scale_graph(si)
        l = pn * pn
        names = [t.name for t in g.inputs]
        out_names = [t.name for t in g.outputs]
        for d in g.dims:
            assert 1 <= d.min <= d.opt <= d.max and d.min < d.max  # single-value ranges are static ints
        prunable = si >= first
        # pruning state is explicit exactly where pruning can happen
        assert ("keep_idx_0" in names) == prunable
        assert ("attn_cache_0" in names) == prunable
        assert ("attn_branch_0" in out_names) == (si + 1 < K and si + 1 >= first)
        assert ("k_prefix_0" in names) == (si > 0)
        kept = g.tensor("k_new_0").shape[2]
        lo = max(1, math.ceil(frac * l - 1e-9))
        if prunable and lo < l:
            assert kept == "kept_0" and (g.dim("kept_0").min, g.dim("kept_0").max) == (lo, l)
            assert g.tensor("keep_idx_0").shape == ("batch2" if max_batch > 1 else 2, "kept_0")
        else:
            assert kept == l
        if si > 0:
            p = g.tensor("k_prefix_0").shape[2]
            before = [q * q for q in SMALL.var.patch_nums[:si]]
            if isinstance(p, int):  # static: no earlier scale could be pruned
                assert p == sum(before)
            else:
                assert g.dim(p).max == sum(before)
                assert g.dim(p).min == sum(kept_range(spec, s)[0] for s in range(si))
        # the TensorRT profile covers every input with shapes of the right rank
        prof = g.profile()
        assert set(prof) == set(names)
        for t in g.inputs:
            lo_s, opt_s, hi_s = prof[t.name]
            assert len(lo_s) == len(t.shape) and all(a <= b <= c for a, b, c in zip(lo_s, opt_s, hi_s))
        assert g.tensor("k_new_0").shape[1] == H and g.tensor("x_BlC").shape[2] == C
        assert sum(n.startswith("k_new_") for n in out_names) == N


def test_batch_dims():
    spec = spec_for(max_batch=4)
    cond = spec.graph("cond")
    assert (cond.dim("batch").min, cond.dim("batch").max) == (1, 4)
    assert (cond.dim("batch2").min, cond.dim("batch2").max) == (2, 8)
    static = spec_for(max_batch=1)
    assert static.graph("cond").inputs[0].shape == (1,)  # one image per call: nothing dynamic
    assert static.scale_graph(0).tensor("x_BlC").shape[0] == 2


def test_prefix_range_sums_kept_ranges():
    spec = spec_for(prune=PruneRange(first_scale=2, min_keep_fraction=0.25))
    lo, opt, hi = prefix_range(spec, 4)
    assert hi == 1 + 4 + 9 + 16
    assert lo == 1 + 4 + math.ceil(0.25 * 9) + math.ceil(0.25 * 16)
    assert prefix_range(spec, 2) == (5, 5, 5)  # static: scales 0 and 1 are never pruned


@pytest.mark.parametrize("kw, message", [
    (dict(opset=12), f"opset 12 is below {MIN_OPSET}"),
    (dict(opset=99), "opset 99 is above"),
    (dict(precision="int8"), "precision must be one of fp32, fp16, bf16"),
    (dict(max_batch=0), "max_batch must be an integer in >= 1"),
    (dict(prune=PruneRange(min_keep_fraction=1.5)), "profile of dim kept_0 is empty"),
    (dict(prune=PruneRange(first_scale=K + 1)), f"valid: 1..{K - 1}, or {K} for no pruning"),
])
def test_bad_options_name_the_valid_range(kw, message):
    with pytest.raises(InvalidArgument) as e:
        spec_for(**kw)
    assert message in str(e.value)


def test_prune_range_refuses_scale_zero_and_negative_fraction():
    with pytest.raises(InvalidArgument, match="scale 0 has no previous scale"):
        PruneRange(first_scale=0)
    with pytest.raises(InvalidArgument, match="min_keep_fraction must be a number >= 0"):
        PruneRange(min_keep_fraction=-0.1)


def test_no_pruning_export_is_static_in_tokens():
    spec = spec_for(prune=PruneRange(first_scale=K))
    for g in spec.graphs:
        assert {d.name for d in g.dims} <= {"batch", "batch2"}
    assert [c.level for c in validation_cases(spec)] == ["all", "all"]


def test_trace_sizes_differ_from_validation_sizes():
    spec = spec_for(max_batch=4)
    for g in spec.graphs:
        sizes = trace_sizes(g)
        for d in g.dims:
            assert max(2, d.min) <= sizes[d.name] <= d.max
        if "batch2" in sizes:
            assert sizes["batch2"] % 2 == 0
    g = spec.scale_graph(4)  # 25 tokens: the traced kept count is none of all / half / one
    s = trace_sizes(g)
    for i in range(SMALL.var.depth):
        assert s[f"kept_{i}"] not in {1, 13, 25}


def test_validation_cases_cover_batch_and_kept_extremes():
    spec = spec_for(max_batch=3)
    cases = validation_cases(spec)
    assert {(c.batch, c.level) for c in cases} == {(b, lv) for b in (1, 3) for lv in ("all", "half", "one")}
    si = 4  # 25 tokens
    assert Case(1, "all").kept(spec, si, 0) == 25
    assert Case(1, "one").kept(spec, si, 0) == 1
    assert {Case(1, "half").kept(spec, si, i) for i in range(3)} == {12, 13, 14}
    assert Case(1, "one").kept(spec, 1, 0) == 4  # not prunable: always every token
