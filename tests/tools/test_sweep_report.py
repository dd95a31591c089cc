"""tools/sweep_report.py: NOVA's FID_feat at FastVAR's FLOP reductions, read off each family's front."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "sweep_report.py"
spec = importlib.util.spec_from_file_location("sweep_report", TOOL)
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


def _row(name, reduction, fid, spi=0.02):
    return {"name": name, "flop_reduction": reduction, "fid_feat": fid, "classifier_accuracy": 0.99,
            "psnr_vs_dense": 30.0, "seconds_per_image": spi, "policy_text": name}


def test_the_front_drops_dominated_points_and_interpolates_between_neighbours():
    front = report.pareto_front([(1.2, 6.0), (1.3, 9.0), (1.4, 8.0), (1.8, 20.0)])
    assert front == [(1.2, 6.0), (1.4, 8.0), (1.8, 20.0)]
    assert report.fid_at(front, 1.3) == pytest.approx(7.0)
    assert report.fid_at(front, 1.8) == 20.0
    assert report.fid_at(front, 1.1) is None and report.fid_at(front, 2.0) is None


def test_any_nova_is_the_best_family_at_each_reduction_and_ahead_means_a_lower_fid():
    rows = [_row("dense", 1.0, 4.0, 0.03), _row("nova b0.2", 1.2, 6.0), _row("nova b0.4", 1.6, 14.0),
            _row("summary keep+ rho2", 1.2, 5.0), _row("summary keep+ rho0", 1.6, 16.0),
            _row("fastvar a", 1.4, 9.0), _row("fastvar b", 2.0, 30.0)]
    table = report.versus_fastvar_table(rows).splitlines()
    assert table[0].split(" | ")[-3:] == ["nova b", "summary keep+", "any NOVA |"]
    assert table[2] == "| fastvar a | 1.40x | 9.00 | 10.00 | 10.50 | 10.00 |"
    assert table[3] == "| fastvar b | 2.00x | 30.00 | not measured | not measured | not measured |"
    rows[5]["fid_feat"] = 12.0
    assert report.versus_fastvar_table(rows).splitlines()[2].endswith("| 10.00 (ahead) |")


def test_a_file_that_is_not_a_sweep_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "sweep.json"
    bad.write_text(json.dumps({"rows": []}))
    r = subprocess.run([sys.executable, str(TOOL), str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "is not a sweep.json" in r.stderr
    assert not (tmp_path / "table.md").exists()
