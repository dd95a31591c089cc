"""tools/nova_sweep.py: the rows it sweeps and the default-config rule it applies."""
import importlib.util
from pathlib import Path

import pytest

from nova_deploy.nova.policy import parse_policy

TOOL = Path(__file__).resolve().parents[2] / "tools" / "nova_sweep.py"
spec = importlib.util.spec_from_file_location("nova_sweep", TOOL)
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)


def _row(name, reduction, fid, acc):
    return {"name": name, "flop_reduction": reduction, "fid_feat": fid, "classifier_accuracy": acc,
            "policy_text": f"text of {name}"}


@pytest.mark.parametrize("K", [7, 10])
def test_every_row_has_a_text_form_that_parses_back_and_fits_the_model(K):
    rows = sweep.configs(K, dense_seeds=3)
    assert [n for n, _, _ in rows[:3]] == ["dense", "dense s1", "dense s2"]
    assert len({n for n, _, _ in rows}) == len(rows)
    for name, policy, seed in rows:
        policy.validate_for(K, 6)
        assert parse_policy(policy.to_text()) == policy, name
    families = {n.split(" ")[0] for n, _, _ in rows}
    assert {"nova", "nova-dist", "summary", "summary-dist", "fastvar", "fixed"} <= families


def test_the_rule_takes_the_largest_reduction_within_fid_and_accuracy_limits():
    rows = [_row("dense", 1.0, 4.0, 0.99), _row("dense s1", 1.0, 4.4, 0.99),
            _row("nova b0.2", 1.2, 4.9, 0.985),   # within: FID <= 5.0, accuracy >= 0.98
            _row("summary keep- rho1", 1.6, 5.0, 0.98),  # within, larger reduction
            _row("nova b0.6", 2.0, 5.1, 0.99),    # FID over 1.25 x 4.0
            _row("fastvar 0.7/0.8", 2.1, 4.0, 0.99)]  # not a NOVA row
    choice = sweep.choose_default(rows)
    assert choice["chosen"] == "summary keep- rho1" and choice["passes_rule"]
    assert choice["policy"] == "text of summary keep- rho1"
    assert choice["within"] == ["nova b0.2", "summary keep- rho1"]


def test_with_no_row_within_the_rule_the_least_aggressive_nova_row_is_named_with_its_cost():
    rows = [_row("dense", 1.0, 4.0, 0.99), _row("nova b0.2", 1.2, 6.0, 0.99), _row("nova b0.3", 1.3, 8.0, 0.99)]
    choice = sweep.choose_default(rows)
    assert choice["chosen"] == "nova b0.2" and not choice["passes_rule"] and choice["fid_feat"] == 6.0
    assert sweep.choose_default(rows[1:])["chosen"] is None
