"""The VQVAE reconstruction report: real-image accuracy is the classifier's, reconstructions are scored
against the same images, their FID_feat against a given real set, and a VQVAE of another image size
is refused."""
import pytest
import torch

from model_factories import randomised_pair
from nova_deploy.errors import InvalidArgument
from nova_deploy.eval.classifier import load_classifier
from nova_deploy.eval.evaluate import real_features
from nova_deploy.eval.metrics import frechet_distance
from nova_deploy.eval.reconstruction import RECON_SEED, format_reconstruction, reconstruction_report
from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import get_preset

torch.set_num_threads(1)


def test_random_vqvae_reconstructs_nothing_the_classifier_recognises():
    _, vae = randomised_pair("small")
    rep = reconstruction_report(vae, load_classifier(), n_images=40, batch=16)
    assert rep.n_images == 40 and rep.classifier_accuracy_real >= 0.95
    assert rep.psnr_db < 15 and rep.ssim < 0.5  # random weights: far from the images
    assert rep.classifier_accuracy_reconstructed < 0.5
    assert "40 held-out images" in format_reconstruction(rep) and "FID_feat" not in format_reconstruction(rep)


def test_identity_reconstruction_scores_like_real_images(monkeypatch):
    _, vae = randomised_pair("small")
    monkeypatch.setattr(vae, "img_to_reconstructed_img", lambda img: img)
    rep = reconstruction_report(vae, load_classifier(), n_images=30, batch=30)
    assert rep.psnr_db == float("inf") and rep.ssim == pytest.approx(1.0)
    assert rep.classifier_accuracy_reconstructed == rep.classifier_accuracy_real


def test_other_image_size_refused():
    _, vae = build_pair(get_preset("tiny"), seed=0)  # 64px
    with pytest.raises(InvalidArgument, match="decodes 64px images"):
        reconstruction_report(vae, load_classifier(), n_images=4)


def test_reconstruction_fid_is_zero_for_the_same_images_and_large_for_noise(monkeypatch):
    """Identity reconstructions of the very images whose features are the reference: distance 0;
    a random VQVAE's reconstructions: far beyond the real-vs-real distance of another real set."""
    clf, n = load_classifier(), 130  # frechet_distance needs more rows than the 128 feature dims
    same_images = real_features(clf, RECON_SEED, n, 65)
    other_real = real_features(clf, RECON_SEED + 1, n, 65)
    _, vae = randomised_pair("small")
    noisy = reconstruction_report(vae, clf, n_images=n, batch=65, fid_against=same_images)
    monkeypatch.setattr(vae, "img_to_reconstructed_img", lambda img: img)
    exact = reconstruction_report(vae, clf, n_images=n, batch=65, fid_against=same_images)
    assert exact.fid_feat == pytest.approx(0.0, abs=1e-6)
    assert noisy.fid_feat > 10 * frechet_distance(other_real, same_images)
    assert f"FID_feat {noisy.fid_feat:.2f}" in format_reconstruction(noisy)
    assert reconstruction_report(vae, clf, n_images=4).fid_feat is None  # not asked for
