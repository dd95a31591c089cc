import pytest
import torch
from hypothesis import given, settings, strategies as st

from nova_deploy.errors import InvalidArgument
from nova_deploy.nova.selection import (fastvar_importance, gather_tokens, importance_from_entropy, nested_kept,
                                        scatter_tokens, select_kept)
from nova_deploy.resample import resample_tokens

torch.set_num_threads(1)
FAST = settings(max_examples=100, deadline=None)


@st.composite
def importance_and_k(draw):
    B, l = draw(st.integers(1, 3)), draw(st.integers(1, 40))
    # few distinct values, so ties are common
    values = draw(st.lists(st.integers(0, 4), min_size=B * l, max_size=B * l))
    return torch.tensor(values, dtype=torch.float32).view(B, l), draw(st.integers(1, l))


@FAST
@given(case=importance_and_k())
def test_select_kept_returns_the_top_k_sorted_unique_positions(case):
    imp_Bl, k = case
    idx_Bk = select_kept(imp_Bl, k)
    B, l = imp_Bl.shape
    assert idx_Bk.shape == (B, k) and idx_Bk.dtype == torch.int64
    for row, imp in zip(idx_Bk.tolist(), imp_Bl.tolist()):
        assert row == sorted(set(row)) and all(0 <= i < l for i in row)
        # exactly the top k by (importance descending, position ascending)
        assert row == sorted(sorted(range(l), key=lambda i: (-imp[i], i))[:k])


def test_ties_go_to_the_lower_position():
    assert select_kept(torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0]]), 2).tolist() == [[1, 2]]
    assert select_kept(torch.zeros(1, 6), 3).tolist() == [[0, 1, 2]]


@FAST
@given(case=importance_and_k(), C=st.integers(1, 4))
def test_scatter_of_gathered_tokens_restores_kept_and_fills_pruned(case, C):
    imp_Bl, k = case
    B, l = imp_Bl.shape
    g = torch.Generator().manual_seed(B * 1000 + l * 10 + k)
    x_BlC, fill_BlC = torch.randn(B, l, C, generator=g), torch.randn(B, l, C, generator=g)
    idx_Bk = select_kept(imp_Bl, k)
    out = scatter_tokens(fill_BlC, idx_Bk, gather_tokens(x_BlC, idx_Bk))
    kept_Bl = torch.zeros(B, l, dtype=torch.bool).scatter(1, idx_Bk, True).unsqueeze(-1)
    assert torch.equal(out, torch.where(kept_Bl, x_BlC, fill_BlC))


@FAST
@given(case=importance_and_k(), data=st.data())
def test_nested_kept_sets_are_nested_and_match_select_kept(case, data):
    imp_Bl, _ = case
    l = imp_Bl.shape[1]
    kept_N = data.draw(st.lists(st.integers(1, l), min_size=1, max_size=6))
    idx_N = nested_kept(imp_Bl, kept_N)
    for idx_Bk, k in zip(idx_N, kept_N):
        assert torch.equal(idx_Bk, select_kept(imp_Bl, k))
    for a, b in zip(idx_N, idx_N[1:]):
        small, large = (a, b) if a.shape[1] <= b.shape[1] else (b, a)
        for s_row, l_row in zip(small.tolist(), large.tolist()):
            assert set(s_row) <= set(l_row)


def test_bad_k_is_rejected():
    with pytest.raises(InvalidArgument, match=r"\[1, 4\]"):
        select_kept(torch.zeros(2, 4), 5)
    with pytest.raises(InvalidArgument, match=r"kept_N\[1\]"):
        nested_kept(torch.zeros(2, 4), [2, 0])


def test_importance_from_entropy_upsamples_the_previous_map():
    H_prev = torch.rand(2, 9, generator=torch.Generator().manual_seed(0))
    imp = importance_from_entropy(H_prev, 3, 5, "bicubic")
    assert imp.shape == (2, 25) and imp.dtype == torch.float32
    assert torch.allclose(imp, resample_tokens(H_prev.unsqueeze(-1), 3, 5, "bicubic").squeeze(-1))
    # a high-entropy corner stays the most important region after upsampling
    corner = torch.zeros(1, 9)
    corner[0, 0] = 1.0
    assert importance_from_entropy(corner, 3, 5, "bicubic").argmax().item() == 0


def test_fastvar_importance_is_the_squared_distance_from_the_mean_token():
    x = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [2.0, 2.0]]])  # mean token (2, 2/3)
    expected = torch.tensor([[1 + 4 / 9, 1 + 4 / 9, 16 / 9]])
    assert torch.allclose(fastvar_importance(x), expected)
