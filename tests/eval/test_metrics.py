import math

import numpy as np
import pytest
import torch
from scipy import linalg
from scipy.ndimage import correlate

from nova_deploy.errors import InvalidArgument
from nova_deploy.eval.metrics import frechet_distance, psnr, ssim, token_agreement

torch.set_num_threads(1)


def _images(seed, shape=(3, 3, 32, 40)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------- PSNR
def test_psnr_matches_formula_and_is_inf_for_identical_images():
    a = _images(0)
    b = (a + 0.1 * _images(1)).clamp(0, 1)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(psnr(a, b), 10 * torch.log10(1 / mse))
    same = psnr(a, a)
    assert same.shape == (3,) and torch.isinf(same).all() and (same > 0).all()


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(InvalidArgument, match="differ in shape"):
        psnr(_images(0), _images(1, (3, 3, 32, 32)))


# ---------------------------------------------------------------- SSIM
def _ssim_reference(x, y):
    """Direct Wang et al. SSIM of one (3, H, W) numpy image pair: 2-D 11x11 window, valid region."""
    r = np.arange(11) - 5.0
    g = np.exp(-r ** 2 / (2 * 1.5 ** 2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    per_channel = []
    for a, b in zip(x, y):
        def filt(t):  # 'valid': keep only the centres whose window lies inside the image
            return correlate(t, win, mode="constant")[5:-5, 5:-5]
        mu_a, mu_b = filt(a), filt(b)
        va, vb, cab = filt(a * a) - mu_a ** 2, filt(b * b) - mu_b ** 2, filt(a * b) - mu_a * mu_b
        m = ((2 * mu_a * mu_b + c1) * (2 * cab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
        per_channel.append(m.mean())
    return float(np.mean(per_channel))


def test_ssim_matches_numpy_reference():
    a = _images(2)
    b = (0.7 * a + 0.3 * _images(3)).clamp(0, 1)
    ours = ssim(a.float(), b.float())
    ref = [_ssim_reference(a[i].numpy(), b[i].numpy()) for i in range(a.shape[0])]
    assert ours.shape == (3,)
    np.testing.assert_allclose(ours.double().numpy(), ref, atol=1e-5, rtol=0)


def test_ssim_is_one_for_identical_and_decreases_with_noise():
    a = _images(4, (2, 3, 48, 48))
    torch.testing.assert_close(ssim(a, a), torch.ones(2, dtype=torch.float64))
    noise = torch.randn(a.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    scores = [ssim(a, (a + s * noise).clamp(0, 1)) for s in (0.02, 0.1, 0.3)]
    assert (scores[0] < 1).all() and (scores[1] < scores[0]).all() and (scores[2] < scores[1]).all()


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(InvalidArgument, match="at least 11x11"):
        ssim(_images(0, (1, 3, 8, 32)), _images(1, (1, 3, 8, 32)))


# ---------------------------------------------------------------- token agreement
def test_token_agreement_per_scale():
    a = [torch.tensor([[3]]), torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])]
    b = [torch.tensor([[4]]), torch.tensor([[1, 2, 0, 4], [5, 0, 7, 8]])]
    assert token_agreement(a, b) == [0.0, 0.75]
    assert token_agreement(a, a) == [1.0, 1.0]
    with pytest.raises(InvalidArgument, match="number of scales"):
        token_agreement(a, b[:1])
    with pytest.raises(InvalidArgument, match="scale 1"):
        token_agreement(a, [b[0], b[1][:1]])


# ---------------------------------------------------------------- Fréchet distance
def _gaussian(seed, n, d, shift=0.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / math.sqrt(d)  # correlated features, like a real network's
    return torch.from_numpy(rng.normal(size=(n, d)) @ mix + shift)


def _frechet_reference(a, b):
    """Tr sqrtm(Sa Sb) via the symmetric form sqrt(Sa)^(1/2) Sb sqrt(Sa)^(1/2): eigh only, no sqrtm."""
    a, b = a.numpy(), b.numpy()
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    half = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(half @ sb @ half), 0, None)).sum()
    diff = a.mean(0) - b.mean(0)
    return diff @ diff + np.trace(sa) + np.trace(sb) - 2 * tr_covmean


def test_frechet_identical_sets_is_zero_and_mean_shift_adds_its_square():
    a = _gaussian(0, 200, 8)
    assert abs(frechet_distance(a, a)) < 1e-8
    v = torch.linspace(-1, 2, 8, dtype=torch.float64)
    np.testing.assert_allclose(frechet_distance(a, a + v), float(v @ v), rtol=1e-7)


def test_frechet_matches_direct_formula():
    a, b = _gaussian(1, 300, 6), _gaussian(2, 250, 6, shift=0.5)
    ours = frechet_distance(a.float(), b.float())  # float32 features are promoted to float64 inside
    np.testing.assert_allclose(ours, _frechet_reference(a.float().double(), b.float().double()), rtol=1e-6)
    # and the closed form for diagonal covariances: sum (sqrt(sa) - sqrt(sb))^2
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(400, 3)) * [1.0, 2.0, 0.5])
    y = torch.from_numpy(rng.normal(size=(400, 3)) * [3.0, 1.0, 0.5])
    sx, sy = np.cov(x.numpy(), rowvar=False), np.cov(y.numpy(), rowvar=False)
    assert frechet_distance(x, y) == pytest.approx(_frechet_reference(x, y), rel=1e-6)
    assert frechet_distance(x, y) == pytest.approx(  # the sample covariances are only nearly diagonal
        float(((x.mean(0) - y.mean(0)) ** 2).sum()) + np.sum((np.sqrt(np.diag(sx)) - np.sqrt(np.diag(sy))) ** 2),
        rel=0.05)


def test_frechet_singular_covariance_still_finite():
    a = _gaussian(4, 100, 5)
    a[:, 4] = 0.0  # a dead feature: both covariances singular
    b = _gaussian(5, 100, 5)
    b[:, 4] = 0.0
    d = frechet_distance(a, b)  # retried with an eps offset; the dead feature adds ~nothing
    assert math.isfinite(d) and d == pytest.approx(frechet_distance(a[:, :4], b[:, :4]), abs=1e-4)


def test_frechet_requires_enough_samples():
    with pytest.raises(InvalidArgument, match="at least 50 samples"):
        frechet_distance(_gaussian(0, 49, 4), _gaussian(1, 100, 4))
    with pytest.raises(InvalidArgument, match="at least 65 samples"):
        frechet_distance(_gaussian(0, 100, 64), _gaussian(1, 64, 64))
    with pytest.raises(InvalidArgument, match="dimension"):
        frechet_distance(_gaussian(0, 100, 4), _gaussian(1, 100, 5))
