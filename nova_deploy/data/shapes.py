"""A procedural, class-conditional image set: coloured shapes on coloured backgrounds.

Every image is a pure function of (seed, index): no downloads, no files, the same pixels on every
machine with the same Pillow. Each class is a shape; colour, position, size, rotation and
background vary at random, so a generator must learn the class and not a template.
"""
import hashlib
import math
from typing import Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw

CLASS_NAMES = ("disc", "square", "triangle", "star", "cross", "ring", "ellipse", "bars", "checker", "crescent")
NUM_CLASSES = len(CLASS_NAMES)
SUPERSAMPLE = 4  # draw large, then downsample: anti-aliased edges
# each class keeps a canonical orientation up to this jitter: with a free angle, the VAR's tokens of
# one scale (sampled independently) each follow a different angle and corners come out as blobs
ROTATION_JITTER_RAD = math.radians(15)


def _regular_polygon(n: int, radius: float, phase: float):
    return [(radius * math.cos(phase + 2 * math.pi * i / n), radius * math.sin(phase + 2 * math.pi * i / n))
            for i in range(n)]


def _star(radius: float, phase: float):
    pts = []
    for i in range(10):
        r = radius if i % 2 == 0 else radius * 0.42
        a = phase + math.pi * i / 5
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _rotate(points, angle: float):
    c, s = math.cos(angle), math.sin(angle)
    return [(x * c - y * s, x * s + y * c) for x, y in points]


def _draw(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float, angle: float, fg, bg):
    def poly(points):
        draw.polygon([(cx + x, cy + y) for x, y in _rotate(points, angle)], fill=fg)

    def disc(x, y, rr, color):
        draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=color)

    if name == "disc":
        disc(cx, cy, r, fg)
    elif name == "square":
        poly(_regular_polygon(4, r * 1.15, math.pi / 4))
    elif name == "triangle":
        poly(_regular_polygon(3, r * 1.2, -math.pi / 2))
    elif name == "star":
        poly(_star(r * 1.2, -math.pi / 2))
    elif name == "cross":
        w = r * 0.36
        poly([(-r, -w), (r, -w), (r, w), (-r, w)])
        poly([(-w, -r), (w, -r), (w, r), (-w, r)])
    elif name == "ring":
        disc(cx, cy, r, fg)
        disc(cx, cy, r * 0.55, bg)
    elif name == "ellipse":  # not a hexagon: its corners (~1.3 px at 32px) vanish under a 4-px token
        poly([(1.15 * r * math.cos(t), 0.5 * r * math.sin(t)) for t in (2 * math.pi * i / 64 for i in range(64))])
    elif name == "bars":
        h = r * 0.18
        for off in (-0.66, 0.0, 0.66):  # gaps of 0.3 r: at least 2 px at 32px
            poly([(-r, off * r - h), (r, off * r - h), (r, off * r + h), (-r, off * r + h)])
    elif name == "checker":
        cell = 2 * r / 3
        for i in range(3):
            for j in range(3):
                if (i + j) % 2 == 0:
                    x0, y0 = -r + i * cell, -r + j * cell
                    poly([(x0, y0), (x0 + cell, y0), (x0 + cell, y0 + cell), (x0, y0 + cell)])
    elif name == "crescent":
        disc(cx, cy, r, fg)
        dx, dy = _rotate([(r * 0.45, 0.0)], angle)[0]
        disc(cx + dx, cy + dy, r * 0.85, bg)
    else:
        raise ValueError(f"unknown shape {name!r}; valid: {', '.join(CLASS_NAMES)}")


def _colours(rng: np.random.Generator) -> Tuple[tuple, tuple]:
    """A foreground and background colour that differ clearly in luminance."""
    while True:
        fg, bg = rng.integers(0, 256, size=3), rng.integers(0, 256, size=3)
        luma = np.array([0.299, 0.587, 0.114])
        if abs(float(fg @ luma) - float(bg @ luma)) > 60:
            return tuple(int(c) for c in fg), tuple(int(c) for c in bg)


def render_shape(class_id: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One image (size, size, 3) uint8 of class class_id, all free parameters drawn from rng."""
    if not 0 <= class_id < NUM_CLASSES:
        raise ValueError(f"class id {class_id} out of range 0..{NUM_CLASSES - 1}")
    fg, bg = _colours(rng)
    big = size * SUPERSAMPLE
    # radius 25-36 % of the side: at 32px the bars' gaps and the star's points stay 2+ px wide; with
    # 18-32 % the VQVAE's 4-px tokens blurred them away (bars read as squares, stars as crosses)
    r = big * rng.uniform(0.25, 0.36)
    cx, cy = rng.uniform(r, big - r, size=2)
    angle = rng.uniform(-ROTATION_JITTER_RAD, ROTATION_JITTER_RAD)
    img = Image.new("RGB", (big, big), bg)
    _draw(ImageDraw.Draw(img), CLASS_NAMES[class_id], float(cx), float(cy), float(r), float(angle), fg, bg)
    return np.array(img.resize((size, size), Image.Resampling.LANCZOS))


class ShapesDataset(torch.utils.data.Dataset):
    """Image i of a given seed: label i % NUM_CLASSES (balanced), pixels in [-1, 1], CHW float32."""

    def __init__(self, seed: int, length: int, size: int = 64):
        self.seed, self.length, self.size = int(seed), int(length), int(size)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        label = i % NUM_CLASSES
        rng = np.random.default_rng([self.seed, i])
        img = render_shape(label, rng, self.size)
        return torch.from_numpy(img).permute(2, 0, 1).float().div(127.5).sub(1), label

    def batch(self, start: int, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        items = [self[i] for i in range(start, start + n)]
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def data_fingerprint(size: int, n: int = 2 * NUM_CLASSES) -> str:
    """A short hash of the first n images of seed 0: two runs or files that name different
    fingerprints were made on different data (a changed class, palette or size range)."""
    h = hashlib.sha256(f"{size}:{','.join(CLASS_NAMES)}".encode())
    images, labels = ShapesDataset(seed=0, length=n, size=size).batch(0, n)  # what training reads, seeding included
    h.update(images.numpy().tobytes())
    h.update(labels.numpy().tobytes())
    return h.hexdigest()[:16]
