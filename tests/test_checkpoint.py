"""Checkpoint reading: official layouts, strictness, one-line errors, never a full unpickle."""
import json
import pickle

import pytest
import torch

from nova_deploy.checkpoint import (convert_checkpoint, infer_var_config, load_models, read_state_dict,
                                    save_safetensors)
from nova_deploy.errors import CheckpointError
from nova_deploy.models.build import build_var, build_vqvae
from nova_deploy.models.presets import PRESETS, get_preset
from nova_deploy.sampler import autoregressive_infer_cfg

OFFICIAL = {"var_d16.pth": "d16", "var_d20.pth": "d20", "var_d24.pth": "d24", "var_d30.pth": "d30", "var_d36.pth": "d36"}
PARAMS = {"d16": 310_283_520, "d20": 600_917_136, "d24": 1_033_399_360, "d30": 2_010_020_356, "d36": 2_353_893_904}


@pytest.fixture(scope="module")
def layouts(golden_dir):
    return json.loads((golden_dir / "official_checkpoint_layouts.json").read_text())["checkpoints"]


@pytest.mark.parametrize("filename", sorted(OFFICIAL))
def test_presets_have_the_official_key_layout(layouts, filename):
    preset = get_preset(OFFICIAL[filename])
    with torch.device("meta"):
        var = build_var(preset.var, build_vqvae(preset.vae))
    ours = {k: list(v.shape) for k, v in var.state_dict().items()}
    assert ours == layouts[filename]
    assert sum(p.numel() for p in var.parameters()) == PARAMS[OFFICIAL[filename]]


def test_official_vqvae_layout(layouts):
    with torch.device("meta"):
        vae = build_vqvae(get_preset("d16").vae)
    assert {k: list(v.shape) for k, v in vae.state_dict().items()} == layouts["vae_ch160v4096z32.pth"]
    assert sum(p.numel() for p in vae.parameters()) == 108_948_355


def test_config_inferred_from_official_state_dict(golden_dir):
    state, meta = read_state_dict(golden_dir / "var_official_tiny.var.pth")
    assert infer_var_config(state, meta) == PRESETS["tiny"].var


def test_safetensors_round_trip_keeps_outputs(golden_models, tmp_path):
    var, vae = golden_models
    save_safetensors(var, PRESETS["tiny"].var, "var", tmp_path / "var.safetensors")
    save_safetensors(vae, PRESETS["tiny"].vae, "vqvae", tmp_path / "vae.safetensors")
    var2, _ = load_models(tmp_path / "var.safetensors", tmp_path / "vae.safetensors")
    a = autoregressive_infer_cfg(var, 2, torch.tensor([1, 2]), g_seed=5)
    b = autoregressive_infer_cfg(var2, 2, torch.tensor([1, 2]), g_seed=5)
    assert torch.equal(a, b)


def test_convert_checkpoint_then_load(golden_dir, tmp_path):
    convert_checkpoint(golden_dir / "var_official_tiny.var.pth", tmp_path / "v.safetensors")
    convert_checkpoint(golden_dir / "var_official_tiny.vae.pth", tmp_path / "q.safetensors", vae_patch_nums=(1, 2, 3, 4))
    var, vae = load_models(tmp_path / "v.safetensors", tmp_path / "q.safetensors")
    assert var.depth == 2 and vae.vocab_size == 64


# ------------------------------------------------------------------ bad input
def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_state_dict(tmp_path / "nope.pth")


def test_truncated_file(golden_dir, tmp_path):
    data = (golden_dir / "var_official_tiny.var.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth: unreadable or truncated"):
        read_state_dict(tmp_path / "cut.pth")


class _Payload:
    def __reduce__(self):
        return (print, ("this code must never run",))


def test_pickle_carrying_code_is_refused(tmp_path, capsys):
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"w": _Payload()}, f, protocol=2)  # torch.save's protocol: refused for the code, not the format
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        read_state_dict(tmp_path / "evil.pth")
    assert "must never run" not in capsys.readouterr().out


def test_vqvae_given_as_var(golden_dir):
    vae = golden_dir / "var_official_tiny.vae.pth"
    with pytest.raises(CheckpointError, match="expected a VAR checkpoint, got a VQVAE checkpoint"):
        load_models(vae, vae)


def test_other_depth_names_the_fitting_preset(golden_dir):
    with pytest.raises(CheckpointError, match="fits preset 'tiny'"):
        load_models(golden_dir / "var_official_tiny.var.pth", golden_dir / "var_official_tiny.vae.pth",
                    expect_var=PRESETS["small"].var)


def test_key_mismatch_lists_missing_and_misshaped(golden_dir, tmp_path):
    state = torch.load(golden_dir / "var_official_tiny.var.pth", weights_only=True)
    del state["head.bias"]
    state["head.weight"] = state["head.weight"][:, :10]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_models(tmp_path / "bad.pth", golden_dir / "var_official_tiny.vae.pth")
    msg = str(err.value)
    assert "1 missing (head.bias)" in msg and "mis-shaped (head.weight" in msg and "\n" not in msg
