"""Resampling of token maps as fixed matrices.

`F.interpolate` (align_corners=False) is linear in its input, so for given sizes and mode it is a
matrix. Building that matrix once lets an exported graph resample with one MatMul (ONNX Resize
does not reproduce torch's 'area' and cubic modes bit for bit), and lets the sampler and the
exported graph resample identically.

Token order is VAR's row-major order: token index = row * pn + col.
"""
import functools
import numbers
from typing import Literal

import torch
import torch.nn.functional as F

from nova_deploy.errors import require

ResampleMode = Literal["area", "bicubic", "bilinear", "nearest"]
MODES = ("area", "bicubic", "bilinear", "nearest")


def check_mode(mode: str, what: str = "mode") -> None:
    require(mode in MODES, f"{what} must be one of {', '.join(MODES)}; got {mode!r}")


def _check_size(n: int, what: str) -> None:
    ok = isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1
    require(ok, f"{what} must be an integer >= 1, got {n!r}")


def interp_matrix_1d(n_in: int, n_out: int, mode: ResampleMode) -> torch.Tensor:
    """(n_out, n_in) float64 matrix M with M @ v == F.interpolate of v along one axis.

    Built by interpolating the identity basis with F.interpolate itself (as a 2-D map whose other
    axis has size 1, which every mode leaves untouched), so it follows torch's definition of
    each mode exactly instead of re-deriving it.
    """
    check_mode(mode)
    _check_size(n_in, "n_in")
    _check_size(n_out, "n_out")
    basis = torch.eye(n_in, dtype=torch.float64).view(n_in, 1, n_in, 1)  # one basis vector per batch row
    align = False if mode in ("bilinear", "bicubic") else None  # the other modes refuse the argument
    out = F.interpolate(basis, size=(n_out, 1), mode=mode, align_corners=align)
    return out.view(n_in, n_out).T.contiguous()  # column b: response to basis vector b


@functools.lru_cache(maxsize=64)
def _token_matrix(pn_in: int, pn_out: int, mode: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    m = interp_matrix_1d(pn_in, pn_out, mode)
    # every mode is separable: out[r, c] = sum_ij M[r, i] M[c, j] x[i, j], i.e. kron(M, M) row-major
    return torch.kron(m, m).to(dtype=dtype, device=device)


def token_resample_matrix(pn_in: int, pn_out: int, mode: ResampleMode) -> torch.Tensor:
    """(pn_out**2, pn_in**2) float64 matrix that resamples a row-major pn_in x pn_in token map."""
    check_mode(mode)
    _check_size(pn_in, "pn_in")
    _check_size(pn_out, "pn_out")
    # a copy: the cached matrix must survive callers that modify theirs
    return _token_matrix(int(pn_in), int(pn_out), mode, torch.float64, torch.device("cpu")).clone()


def resample_tokens(x_BlC: torch.Tensor, pn_in: int, pn_out: int, mode: ResampleMode) -> torch.Tensor:
    """Token map B (pn_in**2) C -> B (pn_out**2) C, equal to F.interpolate on the B C pn pn view."""
    check_mode(mode)
    _check_size(pn_in, "pn_in")
    _check_size(pn_out, "pn_out")
    require(x_BlC.dim() == 3 and x_BlC.shape[1] == pn_in * pn_in,
            f"x_BlC must be B x {pn_in * pn_in} x C for pn_in={pn_in}, got shape {tuple(x_BlC.shape)}")
    m = _token_matrix(int(pn_in), int(pn_out), mode, x_BlC.dtype, x_BlC.device)
    return torch.matmul(m, x_BlC)
