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


@pytest.mark.parametrize("classes, fingerprint, message", [
    (None, "installed", "was measured on classes (not recorded); the installed data has ['disc',"),
    (list(CLASS_NAMES[::-1]), "installed", f"was measured on classes ['{CLASS_NAMES[-1]}',"),
    (list(CLASS_NAMES), None, "was trained on data (not recorded); the installed nova_deploy/data/shapes.py draws"),
    (list(CLASS_NAMES), "0123456789abcdef", "was trained on data 0123456789abcdef;"),
])
def test_refuses_numbers_from_other_data_with_one_line_and_exit_2(tmp_path, classes, fingerprint, message):
    summary = {} if fingerprint is None else {
        "data_fingerprint": data_fingerprint(IMAGE_SIZE) if fingerprint == "installed" else fingerprint}
    (tmp_path / "train_summary.json").write_text(json.dumps(summary))
    ev = {"reports": []} if classes is None else {"classes": classes, "reports": []}
    (tmp_path / "eval.json").write_text(json.dumps(ev))
    done = _write_card(tmp_path, tmp_path / "eval.json")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and message in done.stderr
