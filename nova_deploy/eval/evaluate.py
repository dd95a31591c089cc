"""The quality of a sampling setup on the reference model: fidelity to dense generation with the
same seeds and labels, classifier accuracy, FID_feat beside its real-vs-real noise floor, and the
per-scale entropy curve NOVA reads. The images come from the PyTorch sampler, or from any image
source (eval.sources: an export on a runtime backend at its precision); fidelity is always measured
against the PyTorch sampler's dense fp32 images."""
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch

from nova_deploy.data import NUM_CLASSES, ShapesDataset
from nova_deploy.errors import InvalidArgument, require
from nova_deploy.eval.classifier import IMAGE_SIZE, classify_images, load_classifier
from nova_deploy.eval.metrics import frechet_distance, psnr, ssim, token_agreement
from nova_deploy.nova.policy import Policy
from nova_deploy.eval.sources import ImageSource, SamplerSource
from nova_deploy.sampling import SamplingParams

REAL_SEED_A, REAL_SEED_B = 777_000, 888_000  # two disjoint real sets, neither used in training
FEATURE_DIM = 128


@dataclass
class EvalReport:
    policy: str
    n_samples: int
    source: str  # what generated the images (the PyTorch sampler, or an export on a backend)
    classifier_accuracy: float
    fid_feat: float
    fid_feat_real_vs_real: float
    entropy_per_scale: List[float]
    flop_reduction: float
    token_agreement_per_scale: Optional[List[float]] = None  # vs dense, same seeds and labels
    psnr_vs_dense: Optional[float] = None
    ssim_vs_dense: Optional[float] = None
    sampling: dict = field(default_factory=dict)
    seconds_per_image: float = 0.0  # generation wall time of this policy (batch as given)
    dense_seconds_per_image: Optional[float] = None  # the same for dense (timed when first generated, then cached)
    # confusion[requested][predicted]: which classes a setting loses, and to what (accuracy alone hides it)
    confusion: List[List[int]] = field(default_factory=list)

    @property
    def per_class_accuracy(self) -> List[float]:
        return [row[i] / max(sum(row), 1) for i, row in enumerate(self.confusion)]

    def to_dict(self) -> dict:
        return {**asdict(self), "per_class_accuracy": self.per_class_accuracy}


@dataclass
class EvalCache:
    """What several evaluate() calls share: the dense generations fidelity is measured against (with
    the seconds each batch took), keyed by seed, sampling and batch so that a call with other
    settings cannot be served another's images, and the real-image features, so a run over many
    policies computes each once."""
    dense: Dict[tuple, tuple] = field(default_factory=dict)
    real_features: Dict[Tuple[int, int], Tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def real_feature_sets(self, clf, n: int, batch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features of the two disjoint real sets (A: what samples are measured against; B: the
        real-vs-real noise floor), computed on first use."""
        if (n, batch) not in self.real_features:
            self.real_features[(n, batch)] = (real_features(clf, REAL_SEED_A, n, batch),
                                              real_features(clf, REAL_SEED_B, n, batch))
        return self.real_features[(n, batch)]


def check_model_fits_classifier(var, vae) -> None:
    if var.num_classes != NUM_CLASSES or vae.image_size != IMAGE_SIZE:
        raise InvalidArgument(
            f"this model ({var.num_classes} classes, {vae.image_size}px) does not match the classifier's data "
            f"({NUM_CLASSES} shape classes, {IMAGE_SIZE}px): quality metrics need the reference model or one "
            "trained on the same shapes")


def min_samples_for_fid() -> int:
    return max(FEATURE_DIM + 1, 50) * 2  # twice the rank a feature covariance needs, for a stable sqrtm


@torch.no_grad()
def evaluate(var, vae, policy: Policy, n_samples: int = 1000, batch: int = 50, seed: int = 0,
             params: SamplingParams = SamplingParams(), compare_dense: bool = True,
             progress: Optional[Callable[[int], None]] = None, cache: Optional[EvalCache] = None,
             clf=None, source: Optional[ImageSource] = None) -> EvalReport:
    """cache: shared across calls, e.g. one per policy (see EvalCache).
    clf: the shipped classifier, loaded here unless the caller already holds it.
    source: what generates the scored images (default: the PyTorch sampler on var); another source
    is compared with the sampler's dense images for every policy, dense included (a precision's
    cost), and batches are cut to its max_batch."""
    check_model_fits_classifier(var, vae)
    need = min_samples_for_fid()
    require(n_samples >= need, f"--samples {n_samples} is too few for a stable Fréchet distance on "
                               f"{FEATURE_DIM}-d features: use at least {need} (1000 recommended)")
    clf = load_classifier() if clf is None else clf
    reference = SamplerSource(var)
    source = reference if source is None else source
    compare_dense = compare_dense and (source is not reference or policy.name != "none")
    batch = min(batch, source.max_batch or batch)
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    feats, entropies, reductions = [], [], []
    agree, psnrs, ssims = [], [], []
    seconds, dense_seconds = 0.0, 0.0
    cache = EvalCache() if cache is None else cache
    for start in range(0, n_samples, batch):
        B = min(batch, n_samples - start)
        labels = torch.arange(start, start + B) % NUM_CLASSES
        t0 = time.perf_counter()
        res = source.generate(labels, seed + start, params, policy)
        seconds += time.perf_counter() - t0
        pred, f = classify_images(clf, res.images)
        confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
        feats.append(f)
        entropies += [img["entropy_curve"] for img in res.trace]
        reductions.append(res.trace[0]["flop_reduction"])
        if compare_dense:
            key = (seed, params, start, B)
            if key not in cache.dense:
                t0 = time.perf_counter()
                generated = reference.generate(labels, seed + start, params, Policy())
                cache.dense[key] = (generated, time.perf_counter() - t0)
            dense, dense_batch_seconds = cache.dense[key]
            dense_seconds += dense_batch_seconds
            agree.append(torch.tensor(token_agreement(res.tokens, dense.tokens)) * B)
            p = psnr(res.images, dense.images)
            psnrs.append(p[torch.isfinite(p)])
            ssims.append(ssim(res.images, dense.images))
        if progress:
            progress(B)
    real_a, real_b = cache.real_feature_sets(clf, n_samples, batch)
    report = EvalReport(
        policy=policy.name if policy.config is None else f"{policy.name} {policy.config}",
        n_samples=n_samples, source=source.name, classifier_accuracy=int(confusion.diagonal().sum()) / n_samples,
        fid_feat=frechet_distance(torch.cat(feats), real_a),
        fid_feat_real_vs_real=frechet_distance(real_b, real_a),
        entropy_per_scale=torch.tensor(entropies).mean(0).tolist(),
        flop_reduction=sum(reductions) / len(reductions),
        sampling=asdict(params),
        seconds_per_image=seconds / n_samples,
        dense_seconds_per_image=dense_seconds / n_samples if dense_seconds else None,
        confusion=confusion.tolist(),
    )
    if agree:
        report.token_agreement_per_scale = (torch.stack(agree).sum(0) / n_samples).tolist()
        all_psnr = torch.cat(psnrs)
        report.psnr_vs_dense = float(all_psnr.mean()) if all_psnr.numel() else math.inf
        report.ssim_vs_dense = float(torch.cat(ssims).mean())
    return report


def real_features(clf, seed: int, n: int, batch: int) -> torch.Tensor:
    data = ShapesDataset(seed=seed, length=n, size=IMAGE_SIZE)
    out = []
    for start in range(0, n, batch):
        img, _ = data.batch(start, min(batch, n - start))
        out.append(classify_images(clf, img.add(1).div(2))[1])
    return torch.cat(out)
