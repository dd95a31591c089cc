import pytest
import torch
import torch.nn.functional as F

from nova_deploy.errors import InvalidArgument
from nova_deploy.resample import MODES, interp_matrix_1d, resample_tokens, token_resample_matrix

torch.set_num_threads(1)

SIZES = [(1, 16), (3, 16), (13, 16), (16, 13), (16, 1), (5, 8), (8, 5), (4, 4)]


def _interpolate(x_BChw: torch.Tensor, size, mode: str) -> torch.Tensor:
    align = False if mode in ("bilinear", "bicubic") else None
    return F.interpolate(x_BChw, size=size, mode=mode, align_corners=align)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n_in,n_out", SIZES)
def test_1d_matrix_applied_on_both_axes_matches_interpolate(mode, n_in, n_out):
    # a non-square output checks each axis separately: rows n_in -> n_out, columns n_out -> n_in
    g = torch.Generator().manual_seed(n_in * 100 + n_out)
    x = torch.randn(2, 3, n_in, n_out, generator=g, dtype=torch.float64)
    m_rows, m_cols = interp_matrix_1d(n_in, n_out, mode), interp_matrix_1d(n_out, n_in, mode)
    assert m_rows.shape == (n_out, n_in) and m_rows.dtype == torch.float64
    expected = _interpolate(x, (n_out, n_in), mode)
    assert (m_rows @ x @ m_cols.T - expected).abs().max() < 1e-12


def _token_map_interpolate(x_BlC: torch.Tensor, pn_in: int, pn_out: int, mode: str) -> torch.Tensor:
    B, _, C = x_BlC.shape
    h = x_BlC.transpose(1, 2).reshape(B, C, pn_in, pn_in)
    return _interpolate(h, (pn_out, pn_out), mode).reshape(B, C, -1).transpose(1, 2)


@pytest.mark.parametrize("mode", ["area", "bicubic", "nearest", "bilinear"])
@pytest.mark.parametrize("pn_in,pn_out", SIZES)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_token_resampling_matches_interpolate(mode, pn_in, pn_out, dtype, tol):
    g = torch.Generator().manual_seed(pn_in * 100 + pn_out)
    x_BlC = torch.randn(2, pn_in * pn_in, 4, generator=g).to(dtype)
    m = token_resample_matrix(pn_in, pn_out, mode)
    assert m.shape == (pn_out * pn_out, pn_in * pn_in)
    expected = _token_map_interpolate(x_BlC, pn_in, pn_out, mode)
    out = resample_tokens(x_BlC, pn_in, pn_out, mode)
    assert out.dtype == dtype and out.shape == expected.shape
    assert (out - expected).abs().max() < tol
    assert (m.to(dtype) @ x_BlC - expected).abs().max() < tol


def test_returned_matrix_is_a_copy_of_the_cached_one():
    token_resample_matrix(3, 5, "bicubic").zero_()
    assert token_resample_matrix(3, 5, "bicubic").abs().sum() > 0


def test_bad_mode_names_the_valid_modes():
    with pytest.raises(InvalidArgument, match="area, bicubic, bilinear, nearest"):
        token_resample_matrix(2, 4, "trilinear")
    with pytest.raises(InvalidArgument, match="bicubic"):
        resample_tokens(torch.zeros(1, 4, 2), 2, 4, "cubic")


def test_bad_sizes_are_rejected():
    with pytest.raises(InvalidArgument):
        interp_matrix_1d(0, 4, "area")
    with pytest.raises(InvalidArgument, match="B x 9 x C"):
        resample_tokens(torch.zeros(1, 8, 2), 3, 4, "area")
