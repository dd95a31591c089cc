"""The procedural data set: a pure function of (seed, index), balanced labels, one-line errors."""
import numpy as np
import pytest
import torch

from nova_deploy.data.shapes import CLASS_NAMES, NUM_CLASSES, ShapesDataset, render_shape


def test_same_seed_same_pixels_other_seed_other_pixels():
    a, la = ShapesDataset(seed=5, length=20, size=32).batch(0, 20)
    b, lb = ShapesDataset(seed=5, length=20, size=32).batch(0, 20)
    c, _ = ShapesDataset(seed=6, length=20, size=32).batch(0, 20)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    assert a.shape == (20, 3, 32, 32) and a.min() >= -1 and a.max() <= 1


def test_labels_are_balanced_and_every_class_draws_its_foreground():
    _, labels = ShapesDataset(seed=0, length=3 * NUM_CLASSES, size=32).batch(0, 3 * NUM_CLASSES)
    assert torch.bincount(labels, minlength=NUM_CLASSES).tolist() == [3] * NUM_CLASSES
    for cid in range(NUM_CLASSES):
        img = render_shape(cid, np.random.default_rng(cid), size=32)
        colours = np.unique(img.reshape(-1, 3), axis=0)
        assert len(colours) > 2, CLASS_NAMES[cid]  # background, shape, anti-aliased edge


def test_unknown_class_is_refused():
    with pytest.raises(ValueError, match="class id 10 out of range 0..9"):
        render_shape(NUM_CLASSES, np.random.default_rng(0))


def test_data_fingerprint_follows_the_pixels(monkeypatch):
    from nova_deploy.data import shapes

    first = shapes.data_fingerprint(32)
    assert shapes.data_fingerprint(32) == first and len(first) == 16
    assert shapes.data_fingerprint(16) != first
    monkeypatch.setattr(shapes, "_colours", lambda rng: ((255, 255, 255), (0, 0, 0)))
    assert shapes.data_fingerprint(32) != first  # another colour scheme is other data
