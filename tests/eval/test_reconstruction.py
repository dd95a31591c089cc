"""The VQVAE reconstruction report: real-image accuracy is the classifier's, reconstructions are scored
against the same images, and a VQVAE of another image size is refused."""
import pytest
import torch

from model_factories import randomised_pair
from nova_deploy.errors import InvalidArgument
from nova_deploy.eval.classifier import load_classifier
from nova_deploy.eval.reconstruction import format_reconstruction, reconstruction_report
from nova_deploy.models.build import build_pair
from nova_deploy.models.presets import get_preset

torch.set_num_threads(1)


def test_random_vqvae_reconstructs_nothing_the_classifier_recognises():
    _, vae = randomised_pair("small")
    rep = reconstruction_report(vae, load_classifier(), n_images=40, batch=16)
    assert rep.n_images == 40 and rep.classifier_accuracy_real >= 0.95
    assert rep.psnr_db < 15 and rep.ssim < 0.5  # random weights: far from the images
    assert rep.classifier_accuracy_reconstructed < 0.5
    assert "40 held-out images" in format_reconstruction(rep)


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
