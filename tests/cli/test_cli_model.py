"""The CLI as a user meets it: help, info, generate, convert; bad input gives one line and exit 2."""
import pytest
from PIL import Image

from cli_runner import run_cli


def test_help_lists_commands():
    r = run_cli("--help")
    assert r.exit_code == 0
    for cmd in ("generate", "info", "convert-checkpoint", "export", "validate", "build-engines", "inspect",
                "eval", "train", "train-classifier", "bench"):
        assert cmd in r.output


def test_info_on_official_checkpoint(golden_dir):
    r = run_cli("info", golden_dir / "var_official_tiny.var.pth")
    assert r.exit_code == 0, r.output
    assert "preset tiny" in r.output and "tokens per scale [1, 4, 9, 16], total 30" in r.output


def test_generate_from_official_checkpoint_writes_png(golden_dir, tmp_path):
    out = tmp_path / "g.png"
    r = run_cli("generate", "--checkpoint", golden_dir / "var_official_tiny.var.pth",
            "--vae", golden_dir / "var_official_tiny.vae.pth", "--class", 3, "--class", 7, "--out", out)
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (128, 64)


@pytest.mark.parametrize("args, message", [
    (("--cfg", "nan"), "cfg must be a finite number >= 0"),
    (("--cfg", "-1"), "cfg must be a finite number >= 0"),
    (("--top-p", "1.5"), "top_p must be in [0, 1]"),
    (("--top-k", "-3"), "top_k must be an integer >= 0"),
    (("--class", "11"), "out of range: valid are 0..9"),
])
def test_generate_bad_sampling_arguments(golden_dir, tmp_path, args, message):
    out = tmp_path / "g.png"
    r = run_cli("generate", "--checkpoint", golden_dir / "var_official_tiny.var.pth",
            "--vae", golden_dir / "var_official_tiny.vae.pth", "--out", out, *args)
    assert r.exit_code == 2
    assert message in r.output
    assert not out.exists()


def test_unknown_preset_lists_valid_ones(tmp_path):
    r = run_cli("generate", "--preset", "d99", "--out", tmp_path / "g.png")
    assert r.exit_code == 2 and "d16" in r.output


def test_checkpoint_without_vae(golden_dir, tmp_path):
    r = run_cli("generate", "--checkpoint", golden_dir / "var_official_tiny.var.pth", "--out", tmp_path / "g.png")
    assert r.exit_code == 2 and "--checkpoint and --vae go together" in r.output


def test_corrupt_checkpoint_is_one_line_exit_2(tmp_path, golden_dir):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    r = run_cli("generate", "--checkpoint", bad, "--vae", golden_dir / "var_official_tiny.vae.pth",
            "--out", tmp_path / "g.png")
    assert r.exit_code == 2
    assert r.output.strip().startswith("error: ") and "bad.pth" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "g.png").exists()


def test_convert_checkpoint(golden_dir, tmp_path):
    out = tmp_path / "var.safetensors"
    r = run_cli("convert-checkpoint", golden_dir / "var_official_tiny.var.pth", out)
    assert r.exit_code == 0, r.output
    assert "preset tiny" in run_cli("info", out).output


@pytest.mark.parametrize("policy", ["nova:xyz", "none:xyz", "fastvar:1", "turbo"])
def test_generate_refuses_text_that_is_no_policy(tmp_path, policy):
    out = tmp_path / "g.png"
    r = run_cli("generate", "--policy", policy, "--out", out)
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and r.output.startswith("error: ")
    assert r.output.rstrip().endswith("valid: none, nova[:FIELD=VALUE,...], nova-summary[:FIELD=VALUE,...], fastvar[:FIELD=VALUE,...], fixed:R0,R1,...")
    assert not out.exists()


def test_command_modules_do_not_import_the_group():
    """main.py adds each command to the group; a command module that imported main would register
    itself by import side effect again (an import circle)."""
    import subprocess
    import sys

    code = ("import sys, pkgutil, importlib, nova_deploy.cli as c\n"
            "names = [m.name for m in pkgutil.iter_modules(c.__path__) if m.name.startswith('commands_')]\n"
            "assert len(names) >= 5, names\n"
            "for n in names: importlib.import_module('nova_deploy.cli.' + n)\n"
            "print('nova_deploy.cli.main' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
