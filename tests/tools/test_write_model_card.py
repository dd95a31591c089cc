"""tools/write_model_card.py refuses to describe a model with numbers measured on other data."""
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
