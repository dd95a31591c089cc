"""tools/write_model_card.py refuses to describe a model with numbers measured on other data."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nova_deploy.data import CLASS_NAMES, data_fingerprint
from nova_deploy.eval.classifier import IMAGE_SIZE

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "nova_deploy" / "assets" / "MODEL_CARD.md"


def _write_card(run: Path, eval_json: Path):
    before = CARD.read_bytes()
    done = subprocess.run([sys.executable, str(REPO / "tools" / "write_model_card.py"), str(run), str(eval_json)],
                          capture_output=True, text=True, timeout=120)
    assert CARD.read_bytes() == before  # a refusal leaves the shipped card as it was
    return done


@pytest.mark.parametrize("eval_data, run_data, message", [
    (None, "installed", "was measured on data (not recorded) (classes (not recorded)); the installed"),
    ("0123456789abcdef", "installed", "was measured on data 0123456789abcdef (classes ['disc',"),
    ("installed", None, "was trained on data (not recorded); the installed nova_deploy/data/shapes.py draws"),
    ("installed", "0123456789abcdef", "was trained on data 0123456789abcdef;"),
])
def test_refuses_numbers_from_other_data_with_one_line_and_exit_2(tmp_path, eval_data, run_data, message):
    def recorded(data):
        return {} if data is None else {"data_fingerprint": data_fingerprint(IMAGE_SIZE) if data == "installed" else data}

    (tmp_path / "train_summary.json").write_text(json.dumps(recorded(run_data)))
    ev = {"reports": [], **recorded(eval_data)}
    if eval_data is not None:
        ev["classes"] = list(CLASS_NAMES)
    (tmp_path / "eval.json").write_text(json.dumps(ev))
    done = _write_card(tmp_path, tmp_path / "eval.json")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and message in done.stderr


def _card_tool():
    spec = importlib.util.spec_from_file_location("write_model_card", REPO / "tools" / "write_model_card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECIPE = {"seed": 0, "threads": 2, "data_fingerprint": "f", "vqvae_steps": 4500, "n_encode": 30000,
          "var_steps": 4100, "var_lr": 1.5e-3, "decoder_steps": 600}


def test_stage_times_come_from_the_run_that_computed_each_stage(tmp_path):
    tool = _card_tool()
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "train_summary.json").write_text(json.dumps(
        {**RECIPE, "vqvae_s": 2000.0, "encode_s": 140.0, "var_s": 4500.0, "decoder_s": 200.0}))
    rerun = {**RECIPE, "decoder_steps": 2400, "vqvae_s": 0.5, "encode_s": 0.1, "var_s": 0.4, "decoder_s": 700.0,
             "stages_found_complete": ["vqvae", "encode", "var"]}
    stage_s, provenance = tool.stage_times(rerun, earlier)
    assert stage_s == {"vqvae_s": 2000.0, "encode_s": 140.0, "var_s": 4500.0, "decoder_s": 700.0}
    assert provenance.startswith("decoder stage(s) timed in this run; vqvae, encode, var") and "`earlier`" in provenance
    assert tool.stage_times({**RECIPE, "vqvae_s": 1.0, "stages_found_complete": []}, None) == (
        {"vqvae_s": 1.0}, "one uninterrupted run")


@pytest.mark.parametrize("summary, earlier, message", [
    ({**RECIPE, "stages_found_complete": ["vqvae"]}, None, "the run resumed the stages vqvae complete"),
    ({**RECIPE, "stages_found_complete": []}, "earlier", "the run resumed no stage from"),
    ({**RECIPE, "vqvae_steps": 4000, "stages_found_complete": ["var"]}, "earlier", "(vqvae_steps differ)"),
])
def test_stage_times_refuse_times_that_were_not_measured(tmp_path, capsys, summary, earlier, message):
    tool = _card_tool()
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "train_summary.json").write_text(json.dumps(RECIPE))
    with pytest.raises(SystemExit) as exit_info:
        tool.stage_times(summary, None if earlier is None else tmp_path / earlier)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_the_card_names_the_thread_split_train_reference_made():
    tool = _card_tool()
    var_how, decoder_how = tool.var_and_decoder_threads(
        {"threads": 3, "var_compiled": True, "var_all_threads_from": 1200}, beside=True)
    assert var_how == "; the step compiled with torch.compile; 2 threads up to step 1200, then 3"
    assert decoder_how == ("; in a second process beside the encoding and the VAR's first 1200 steps, "
                           "one thread against the VAR's 2 threads")
    assert tool.var_and_decoder_threads({"threads": 1, "var_compiled": False}, beside=False) == ("", "")
    assert tool.var_and_decoder_threads({"threads": 1, "var_compiled": True, "var_deterministic": True},
                                        beside=False)[0] == ("; the step compiled with torch.compile, "
                                                             "on torch's deterministic kernels")


def test_the_card_names_the_machine_the_run_recorded():
    machine = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_count": 2, "cpu_capability": "AVX512", "torch": "2.13.0+cpu"}
    tool = _card_tool()
    assert tool.machine_phrase({"machine": machine}) == \
        "2-core Intel(R) Xeon(R) Processor, torch 2.13.0+cpu on AVX512 kernels"
    assert tool.machine_phrase({}) == "2-core CPU"  # summaries before v10 recorded no machine
