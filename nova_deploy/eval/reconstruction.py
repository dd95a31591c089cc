"""How well the VQVAE reproduces real images: the ceiling of any VAR sampled through it.

A VAR can only draw what its tokenizer can decode, so sample accuracy is read beside the
classifier's accuracy on the VQVAE's reconstructions of real, never-trained-on images, and a
sample FID_feat beside the FID_feat of those reconstructions (against the same real set).
"""
from dataclasses import asdict, dataclass
from typing import Optional

import torch

from nova_deploy.data import ShapesDataset
from nova_deploy.eval.classifier import IMAGE_SIZE, classify_images
from nova_deploy.eval.metrics import frechet_distance, psnr, ssim
from nova_deploy.errors import require

RECON_SEED = 4242  # no training stage reads this data seed


@dataclass
class ReconstructionReport:
    n_images: int
    seed: int
    psnr_db: float
    ssim: float
    classifier_accuracy_real: float
    classifier_accuracy_reconstructed: float
    # Fréchet distance of the reconstructions' classifier features to a disjoint real set: what a
    # sampler that reproduced real token maps exactly would score (None when not asked for)
    fid_feat: Optional[float] = None

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def reconstruction_report(vae, clf, n_images: int = 300, seed: int = RECON_SEED, batch: int = 100,
                          fid_against: Optional[torch.Tensor] = None) -> ReconstructionReport:
    """fid_against: classifier features of a real set disjoint from this one (eval passes the set its
    samples are measured against); the Fréchet distance needs as many images as frechet_distance asks."""
    require(n_images >= 1, f"n_images must be >= 1, got {n_images}")
    require(vae.image_size == IMAGE_SIZE,
            f"the VQVAE decodes {vae.image_size}px images; the classifier's data is {IMAGE_SIZE}px")
    data = ShapesDataset(seed=seed, length=n_images, size=IMAGE_SIZE)
    psnrs, ssims, feats, hits_real, hits_rec = [], [], [], 0, 0
    for start in range(0, n_images, batch):
        img, labels = data.batch(start, min(batch, n_images - start))
        real_01 = img.add(1).div(2)
        rec_01 = vae.img_to_reconstructed_img(img).add(1).div(2).clamp(0, 1)
        psnrs.append(psnr(rec_01, real_01))
        ssims.append(ssim(rec_01, real_01))
        hits_real += int((classify_images(clf, real_01)[0] == labels).sum())
        pred_rec, feat_rec = classify_images(clf, rec_01)
        hits_rec += int((pred_rec == labels).sum())
        feats.append(feat_rec)
    fid = None if fid_against is None else frechet_distance(torch.cat(feats), fid_against)
    return ReconstructionReport(n_images=n_images, seed=seed, psnr_db=float(torch.cat(psnrs).mean()),
                                ssim=float(torch.cat(ssims).mean()),
                                classifier_accuracy_real=hits_real / n_images,
                                classifier_accuracy_reconstructed=hits_rec / n_images, fid_feat=fid)


def format_reconstruction(rep: ReconstructionReport) -> str:
    return (f"VQVAE reconstruction of {rep.n_images} held-out images (seed {rep.seed}): PSNR {rep.psnr_db:.2f} dB, "
            f"SSIM {rep.ssim:.4f}, classifier accuracy {100 * rep.classifier_accuracy_reconstructed:.1f}% "
            f"(real images {100 * rep.classifier_accuracy_real:.1f}%)"
            + ("" if rep.fid_feat is None else f", FID_feat {rep.fid_feat:.2f} (what exact real token maps score through this decoder)"))
