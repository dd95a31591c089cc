"""The bundled reference models as shipped: within the package's size budget, each on its preset's
schedule, generating images, with a card and a measured NOVA default."""
import json
from pathlib import Path

import pytest
import torch

from nova_deploy.model_source import ASSETS, BUNDLED_MODELS, resolve_models
from nova_deploy.models.presets import get_preset
from nova_deploy.nova.model_defaults import DEFAULT_FILE, load_nova_default
from nova_deploy.sampler import generate

REPO = Path(__file__).resolve().parents[1]
SIZE_BUDGET_BYTES = 30_000_000  # issue 28: both models with the classifier(s), <= 30 MB


def installed(name: str):
    if not BUNDLED_MODELS[name].available():
        pytest.skip(f"bundled model {name} is not installed in this checkout")
    return BUNDLED_MODELS[name]


def test_the_bundled_weights_with_the_classifier_fit_the_size_budget():
    weights = sorted(ASSETS.rglob("*.safetensors"))
    assert ASSETS / "classifier.safetensors" in weights
    total = sum(p.stat().st_size for p in weights)
    assert total <= SIZE_BUDGET_BYTES, f"{total / 1e6:.1f} MB of weights: {[p.name for p in weights]}"


@pytest.mark.parametrize("name", list(BUNDLED_MODELS))
def test_a_bundled_model_loads_on_its_preset_schedule_and_generates(name):
    installed(name)
    src = resolve_models(None, None, None, model=name)
    preset = get_preset(name)
    assert tuple(src.var.patch_nums) == tuple(preset.var.patch_nums) and src.bundled == name
    res = generate(src.var, 2, torch.tensor([0, 3]), g_seed=1)
    size = preset.vae.image_size
    assert res.images.shape == (2, 3, size, size)
    assert bool(torch.isfinite(res.images).all()) and float(res.images.min()) >= 0 and float(res.images.max()) <= 1
    assert [t.shape[1] for t in res.idx_Bl] == [pn * pn for pn in preset.var.patch_nums]


@pytest.mark.parametrize("name", list(BUNDLED_MODELS))
def test_a_bundled_model_has_its_card_and_a_default_from_its_own_sweep(name):
    model = installed(name)
    assert (model.directory / "MODEL_CARD.md").is_file()
    default = load_nova_default(name)
    assert default is not None, f"{name} ships without {DEFAULT_FILE}"
    assert default.sweep == f"docs/nova_sweep/{name}/sweep.json"
    sweep = json.loads((REPO / default.sweep).read_text())
    chosen_row = json.loads((model.directory / DEFAULT_FILE).read_text())["row"]  # NovaDefault keeps no row name
    row = next(r for r in sweep["rows"] if r["name"] == chosen_row)
    assert row["policy_text"] == default.policy.to_text()
    assert row["flop_reduction"] == pytest.approx(default.flop_reduction)
