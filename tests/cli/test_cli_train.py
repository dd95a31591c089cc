"""`nova-deploy train` and `train-classifier` run end to end at a few steps, resume, and refuse bad input."""
import json
import os

import torch

from cli_runner import run_cli
from nova_deploy.checkpoint import read_state_dict


def test_train_runs_every_stage_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ("train", "--out", out, "--vqvae-steps", 2, "--var-steps", 2, "--encode-images", 20,
            "--decoder-steps", 2, "--threads", 1, "--no-compile")
    r = run_cli(*args)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["vqvae_steps"] == 2 and summary["decoder_steps"] == 2 and summary["n_encode"] == 20
    assert summary["stages_found_complete"] == []
    assert summary["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert summary["machine"]["cpu_count"] == os.cpu_count() and summary["machine"]["cpu"]
    for name in ("var_log.jsonl", "vqvae_log.jsonl", "decoder_log.jsonl"):
        assert (out / name).read_text().strip(), name
    var_state, _ = read_state_dict(out / "var.safetensors")
    vae_state, _ = read_state_dict(out / "vqvae.safetensors")
    assert "head.weight" in var_state and "quantize.embedding.weight" in vae_state
    lines = (out / "var_log.jsonl").read_text().count("\n")
    r = run_cli(*args)  # every stage is complete: resuming trains nothing more
    assert r.exit_code == 0, r.output
    assert (out / "var_log.jsonl").read_text().count("\n") == lines
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["stages_found_complete"] == ["vqvae", "encode", "var", "decoder"]  # their times measure nothing
    longer_decoder = (*args[:-5], "--decoder-steps", 3, "--threads", 1, "--no-compile")
    r = run_cli(*longer_decoder)  # resuming the 2-step state would splice two LR schedules
    assert r.exit_code == 2 and "decoder_train_state.pt is step 2 of a 2-step schedule and this run asks for 3" in r.output
    (out / "vqvae_train_state.pt").rename(out / "vqvae_saved.pt")
    r = run_cli(*longer_decoder)  # refused before any stage runs: the VQVAE is not retrained first
    assert r.exit_code == 2 and "a 2-step schedule" in r.output
    assert not (out / "vqvae_train_state.pt").exists()
    (out / "vqvae_saved.pt").rename(out / "vqvae_train_state.pt")
    (out / "decoder_train_state.pt").unlink()
    r = run_cli(*longer_decoder)  # only the decoder stage runs again, from the start
    assert r.exit_code == 0, r.output
    assert json.loads((out / "train_summary.json").read_text())["stages_found_complete"] == ["vqvae", "encode", "var"]


def test_train_rejects_bad_counts(tmp_path):
    r = run_cli("train", "--out", tmp_path / "run", "--var-steps", 0)
    assert r.exit_code == 2 and "--var-steps must be >= 1, got 0" in r.output
    assert not (tmp_path / "run").exists()


def test_train_refuses_compile_without_a_cxx_compiler(tmp_path, monkeypatch):
    import nova_deploy.cli.commands_eval as commands

    monkeypatch.setattr(commands.shutil, "which", lambda name: None)
    r = run_cli("train", "--out", tmp_path / "run", "--var-steps", 2)
    assert r.exit_code == 2 and "--compile needs a C++ compiler" in r.output and "--no-compile" in r.output
    assert not (tmp_path / "run").exists()


def test_train_classifier_bad_input(tmp_path):
    r = run_cli("train-classifier", "--out", tmp_path / "no" / "c.safetensors", "--steps", 1)
    assert r.exit_code == 2 and "does not exist" in r.output
    r = run_cli("train-classifier", "--out", tmp_path / "c.safetensors", "--threads", 0)
    assert r.exit_code == 2 and "--threads must be >= 1" in r.output
    assert not list(tmp_path.iterdir())


def test_train_model_selects_that_models_recipe(tmp_path):
    out = tmp_path / "run16"
    r = run_cli("train", "--model", "nova-ref-16", "--out", out, "--vqvae-steps", 2, "--var-steps", 1,
                "--encode-images", 8, "--decoder-steps", 1, "--threads", 1)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["preset"] == "nova-ref-16" and summary["var_attention"] == "flash" and not summary["var_compiled"]
    var_state, _ = read_state_dict(out / "var.safetensors")
    assert var_state["pos_1LC"].shape[1] == 680  # the official 10-scale schedule
    r = run_cli("train", "--model", "nova-ref-17", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "nova-ref-17" in r.output and not (tmp_path / "x").exists()
