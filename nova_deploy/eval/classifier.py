"""A small CNN that tells the 10 procedural shapes apart, shipped as an asset.

It serves two metrics of generated samples: class accuracy (does the VAR draw the class it was
asked for) and a Fréchet distance on its 128-d penultimate features ("FID_feat"; Inception
features mean little on 32px synthetic shapes).
"""
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from nova_deploy.atomic_write import write_json_atomic
from nova_deploy.checkpoint import META_CONFIG, META_KIND, check_fits, read_state_dict, save_safetensors
from nova_deploy.data.shapes import CLASS_NAMES, NUM_CLASSES, ShapesDataset, data_fingerprint
from nova_deploy.errors import CheckpointError, require
from nova_deploy.train.loop import cosine_lr

KIND = "shape_classifier"
# which images it was trained to tell apart: a classifier of other classes would score samples silently wrong
META_DATA = "nova_deploy.data_fingerprint"
IMAGE_SIZE = 32  # the nova-ref VQVAE decodes 32px images
HELDOUT_SEED, HELDOUT_SIZE = 12345, 1000  # never a training seed: accuracy on unseen images
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "assets" / "classifier.safetensors"


@dataclass(frozen=True)
class ClassifierConfig:
    # one conv block per width, each halves H and W; narrower than 32-64-128-128 so that training
    # fits in minutes on one CPU thread (>= 99% held-out accuracy either way)
    widths: Tuple[int, ...] = (16, 32, 64, 128)
    num_classes: int = NUM_CLASSES


class ConvBlock(nn.Sequential):
    """conv3x3 -> BatchNorm -> ReLU -> 2x2 max-pool."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class ShapeClassifier(nn.Module):
    """Input (B, 3, IMAGE_SIZE, IMAGE_SIZE) in [-1, 1] like ShapesDataset; logits (B, num_classes)."""

    def __init__(self, cfg: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.cfg = cfg
        chans = (3,) + tuple(cfg.widths)
        self.blocks = nn.Sequential(*[ConvBlock(i, o) for i, o in zip(chans[:-1], chans[1:])])
        self.head = nn.Linear(chans[-1], cfg.num_classes)

    def features(self, x_B3HW: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, widths[-1]): global average pool of the last block."""
        return self.blocks(x_B3HW).mean(dim=(2, 3))

    def forward(self, x_B3HW: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x_B3HW))


@torch.no_grad()
def classify_images(model: ShapeClassifier, images_01: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Predicted labels (B,) and penultimate features (B, D) of images (B, 3, IMAGE_SIZE, IMAGE_SIZE) in [0, 1]."""
    require(images_01.dim() == 4 and images_01.shape[1] == 3,
            f"images must be (B, 3, H, W), got {tuple(images_01.shape)}")
    require(tuple(images_01.shape[-2:]) == (IMAGE_SIZE, IMAGE_SIZE),
            f"the classifier was trained on {IMAGE_SIZE}x{IMAGE_SIZE} images, got "
            f"{images_01.shape[-2]}x{images_01.shape[-1]}; resize first")
    device = next(model.parameters()).device
    feats_BD = model.features(images_01.to(device=device, dtype=torch.float32) * 2 - 1)
    return model.head(feats_BD).argmax(-1), feats_BD


@torch.no_grad()
def heldout_accuracy(model: ShapeClassifier, seed: int = HELDOUT_SEED, n: int = HELDOUT_SIZE,
                     chunk: int = 250) -> float:
    """Accuracy on n images of a data seed (pass one never trained on)."""
    data, correct = ShapesDataset(seed=seed, length=n, size=IMAGE_SIZE), 0
    for start in range(0, n, chunk):
        x, y = data.batch(start, min(chunk, n - start))
        pred, _ = classify_images(model, (x + 1) / 2)
        correct += int((pred == y).sum())
    return correct / n


def train_classifier(out_path, seed: int = 0, steps: int = 700, batch: int = 64, lr: float = 3e-3,
                     cfg: ClassifierConfig = ClassifierConfig(), heldout_images: int = HELDOUT_SIZE,
                     log: Optional[Callable[[str], None]] = None) -> dict:
    """Train on fresh ShapesDataset(seed) images every step, write the weights (safetensors,
    atomic) to out_path and a card (json) beside it; return the card."""
    require(steps >= 1, f"steps must be >= 1, got {steps}")
    require(batch >= 1, f"batch must be >= 1, got {batch}")
    require(heldout_images >= 1, f"heldout_images must be >= 1, got {heldout_images}")
    require(seed != HELDOUT_SEED, f"seed {HELDOUT_SEED} is the held-out seed; train on another")
    out_path = Path(out_path)
    require(out_path.suffix == ".safetensors",
            f"out_path must end in .safetensors (the card goes beside it), got {out_path}")
    torch.manual_seed(seed)
    data = ShapesDataset(seed=seed, length=steps * batch, size=IMAGE_SIZE)  # each step reads the next unseen images
    model = ShapeClassifier(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t0 = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup=min(50, steps // 10 + 1))
        x, y = data.batch(step * batch, batch)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log is not None and (step % 50 == 0 or step == steps - 1):
            log(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - t0:6.1f}s")
    train_s = time.time() - t0
    model.eval()
    fingerprint = data_fingerprint(IMAGE_SIZE)
    card = {
        "kind": KIND, "config": {"widths": list(cfg.widths), "num_classes": cfg.num_classes},
        "classes": list(CLASS_NAMES), "data_fingerprint": fingerprint,
        "data_seed": seed, "steps": steps, "batch": batch, "lr": lr, "optimizer": "Adam, cosine schedule",
        "train_seconds": round(train_s, 1), "torch_threads": torch.get_num_threads(),
        "heldout": {"seed": HELDOUT_SEED, "images": heldout_images,
                    "accuracy": heldout_accuracy(model, n=heldout_images)},
        "torch_version": torch.__version__,
    }
    save_safetensors(model, cfg, KIND, out_path, extra_meta={META_DATA: fingerprint})
    card_path = out_path.with_suffix(".json")
    write_json_atomic(card_path, card, indent=2)
    return card


def load_classifier(path=None) -> ShapeClassifier:
    """The classifier at path (default: the packaged asset), in eval mode, frozen."""
    path = DEFAULT_PATH if path is None else Path(path)
    state, meta = read_state_dict(path)  # CheckpointError on a missing or unreadable file
    if meta.get(META_KIND) != KIND:
        raise CheckpointError(f"{path}: not a shape classifier (kind {meta.get(META_KIND)!r}, expected {KIND!r})")
    try:
        raw = json.loads(meta[META_CONFIG])
        cfg = ClassifierConfig(widths=tuple(int(w) for w in raw["widths"]), num_classes=int(raw["num_classes"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable classifier config in the metadata ({e})") from None
    if meta.get(META_DATA) != data_fingerprint(IMAGE_SIZE):
        raise CheckpointError(f"{path}: trained on other images than nova_deploy/data/shapes.py draws now (classes "
                              f"{', '.join(CLASS_NAMES)}); retrain it with `nova-deploy train-classifier`")
    model = ShapeClassifier(cfg)
    check_fits(model, state, path, f"shape classifier (widths {cfg.widths})")
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)
