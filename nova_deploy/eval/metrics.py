"""Image and sample quality metrics: pure functions, tensors in, floats or per-image tensors out.

Images are (B, 3, H, W) in [0, 1]. Per-image metrics return a (B,) tensor so that callers can
report a mean, a spread or the worst case as they need.
"""
import warnings
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

from nova_deploy.errors import InvalidArgument, require

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03  # Wang et al. 2004
FRECHET_MIN_SAMPLES = 50  # below this the covariance estimate of even a small feature set is noise
FRECHET_EPS = 1e-6  # diagonal offset when the covariance product is singular (as pytorch-fid)
FRECHET_MAX_IMAG = 1e-3  # sqrtm's imaginary part above this is not rounding: the input is degenerate


def _check_image_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    require(a.dim() == 4 and a.shape[1] == 3, f"images must be (B, 3, H, W), got {tuple(a.shape)}")
    require(a.shape == b.shape, f"image batches differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (B,), data range 1.

    Identical images give +inf (their MSE is 0); average only finite values or report inf.
    """
    _check_image_pair(a, b)
    mse_B = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    out_B = torch.full_like(mse_B, float("inf"))
    nz = mse_B > 0
    out_B[nz] = 10 * torch.log10(1.0 / mse_B[nz])
    return out_B.to(a.dtype)


def _gaussian_window_1d(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-x * x / (2 * sigma * sigma))
    return w / w.sum()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (B,): Wang et al., 11x11 Gaussian window sigma 1.5,
    K1 0.01, K2 0.03, data range 1, computed per RGB channel over the 'valid' region (no
    padding, so borders are not biased by zeros) and averaged over channels.
    """
    _check_image_pair(a, b)
    H, W = a.shape[-2:]
    require(H >= SSIM_WINDOW and W >= SSIM_WINDOW,
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {H}x{W}")
    # float64: sigma^2 = E[x^2] - E[x]^2 cancels badly in float32 on flat regions
    x, y = a.double(), b.double()
    g = _gaussian_window_1d(SSIM_WINDOW, SSIM_SIGMA)
    C = x.shape[1]
    g_rows, g_cols = g.view(1, 1, -1, 1).repeat(C, 1, 1, 1), g.view(1, 1, 1, -1).repeat(C, 1, 1, 1)

    def blur(t):  # separable Gaussian, one filter per channel
        return F.conv2d(F.conv2d(t, g_rows, groups=C), g_cols, groups=C)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov_xy = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    # every channel has the same number of valid pixels, so the mean over (C, h, w) is the channel mean
    return ssim_map.flatten(1).mean(1).to(a.dtype)


def token_agreement(idx_a: Sequence[torch.Tensor], idx_b: Sequence[torch.Tensor]) -> List[float]:
    """Fraction of equal token ids at each scale; idx_*: one (B, l) tensor per scale."""
    require(len(idx_a) == len(idx_b), f"token lists differ in number of scales: {len(idx_a)} vs {len(idx_b)}")
    out = []
    for si, (a_Bl, b_Bl) in enumerate(zip(idx_a, idx_b)):
        require(a_Bl.shape == b_Bl.shape,
                f"scale {si}: token shapes differ: {tuple(a_Bl.shape)} vs {tuple(b_Bl.shape)}")
        require(a_Bl.numel() > 0, f"scale {si}: no tokens to compare")
        out.append((a_Bl == b_Bl).double().mean().item())
    return out


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor, min_samples: Optional[int] = None) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D):
    ||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 sqrtm(Sa Sb)), in float64.

    min_samples: the fewest rows each set must have; default max(D + 1, 50): with N <= D the
    covariance is singular and the distance mostly measures the sample size.
    """
    require(feats_a.dim() == 2 and feats_b.dim() == 2,
            f"features must be (N, D), got {tuple(feats_a.shape)} and {tuple(feats_b.shape)}")
    D = feats_a.shape[1]
    require(feats_b.shape[1] == D, f"feature sets differ in dimension: {D} vs {feats_b.shape[1]}")
    need = max(D + 1, FRECHET_MIN_SAMPLES) if min_samples is None else int(min_samples)
    require(need >= 2, f"min_samples must be >= 2, got {need}")
    n, m = feats_a.shape[0], feats_b.shape[0]
    require(n >= need and m >= need,
            f"a stable Fréchet distance of {D}-d features needs at least {need} samples per set, got {n} and {m}")
    a = feats_a.detach().cpu().double().numpy()
    b = feats_b.detach().cpu().double().numpy()
    require(bool(np.isfinite(a).all() and np.isfinite(b).all()), "features contain NaN or inf")

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
    singular = any(issubclass(w.category, linalg.LinAlgWarning) for w in caught)
    if singular or not np.isfinite(covmean).all():  # offset both covariances and retry
        offset = np.eye(D) * FRECHET_EPS
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        imag = float(np.abs(np.diagonal(covmean).imag).max())  # only the trace is used
        if imag > FRECHET_MAX_IMAG:
            raise InvalidArgument(f"Fréchet distance is ill-conditioned (sqrtm imaginary part {imag:.3g}); "
                                  "the features are degenerate: use more samples or check the feature extractor")
        covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
