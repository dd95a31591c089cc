import json

import pytest
import torch

from nova_deploy.checkpoint import save_safetensors
from nova_deploy.data.shapes import ShapesDataset
from nova_deploy.errors import CheckpointError, InvalidArgument
from nova_deploy.eval.classifier import (IMAGE_SIZE, ClassifierConfig, ShapeClassifier, classify_images,
                                        load_classifier, train_classifier)

torch.set_num_threads(1)


def test_fresh_model_shapes():
    model = ShapeClassifier().eval()
    x = torch.rand(3, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert model.features(x * 2 - 1).shape == (3, 128)
    assert model(x * 2 - 1).shape == (3, 10)
    pred, feats = classify_images(model, x)
    assert pred.shape == (3,) and feats.shape == (3, 128)


def test_classify_images_rejects_wrong_size():
    with pytest.raises(InvalidArgument, match=f"{IMAGE_SIZE}x{IMAGE_SIZE}"):
        classify_images(ShapeClassifier(), torch.rand(1, 3, 2 * IMAGE_SIZE, 2 * IMAGE_SIZE))


def test_shipped_classifier_accuracy_on_heldout_images():
    model = load_classifier()
    assert not model.training
    x, y = ShapesDataset(seed=999, length=200, size=IMAGE_SIZE).batch(0, 200)
    pred, feats = classify_images(model, (x + 1) / 2)
    assert feats.shape == (200, 128)
    assert (pred == y).float().mean().item() >= 0.95


def test_load_classifier_missing_or_corrupt_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_classifier(tmp_path / "absent.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_classifier(bad)


def test_train_writes_loadable_weights_and_card(tmp_path):
    out = tmp_path / "clf.safetensors"
    card = train_classifier(out, seed=1, steps=2, batch=10, cfg=ClassifierConfig(widths=(4, 8)), heldout_images=20)
    assert json.loads(out.with_suffix(".json").read_text()) == card
    assert card["data_seed"] == 1 and card["steps"] == 2 and 0 <= card["heldout"]["accuracy"] <= 1
    model = load_classifier(out)
    assert model.cfg.widths == (4, 8) and model.features(torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE)).shape == (2, 8)
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary files


def test_load_classifier_rejects_other_checkpoints(tmp_path):
    path = tmp_path / "other.safetensors"
    save_safetensors(ShapeClassifier(), ClassifierConfig(), "vqvae", path)
    with pytest.raises(CheckpointError, match="not a shape classifier"):
        load_classifier(path)


def test_load_classifier_refuses_one_trained_on_other_data(tmp_path, monkeypatch):
    from nova_deploy.data import shapes

    out = tmp_path / "clf.safetensors"
    train_classifier(out, seed=1, steps=1, batch=10, cfg=ClassifierConfig(widths=(4, 8)), heldout_images=10)
    monkeypatch.setattr(shapes, "_colours", lambda rng: ((255, 255, 255), (0, 0, 0)))  # the data changed since
    with pytest.raises(CheckpointError, match="trained on other images than nova_deploy/data/shapes.py draws now "
                                              r"\(classes disc, .*\); retrain it with `nova-deploy train-classifier`"):
        load_classifier(out)
    untagged = tmp_path / "untagged.safetensors"
    save_safetensors(ShapeClassifier(), ClassifierConfig(), "shape_classifier", untagged)
    with pytest.raises(CheckpointError, match="trained on other images"):
        load_classifier(untagged)
