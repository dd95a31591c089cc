"""`--policy nova` on a bundled model runs the configuration its sweep chose, and says what it costs
when no configuration kept quality."""
import json

import pytest

from cli_runner import run_cli
from nova_deploy import model_source
from nova_deploy.errors import InvalidArgument
from nova_deploy.export.exporter import source_record
from nova_deploy.model_source import BUNDLED_MODELS, BundledModel, resolve_models
from nova_deploy.nova.config import NovaConfig
from nova_deploy.nova.model_defaults import DEFAULT_FILE, load_nova_default, resolve_policy_text
from nova_deploy.nova.policy import Policy, parse_policy


def test_the_shipped_default_of_nova_ref_parses_and_states_its_cost():
    default = load_nova_default("nova-ref")
    shipped = json.loads((BUNDLED_MODELS["nova-ref"].directory / DEFAULT_FILE).read_text())
    assert default.policy == parse_policy(shipped["policy"])
    assert default.passes_rule == shipped["passes_rule"]
    assert bool(default.note) == (not default.passes_rule)
    if default.note:
        assert "\n" not in default.note and default.policy.to_text() in default.note


def test_only_plain_nova_on_a_bundled_model_is_replaced():
    default = load_nova_default("nova-ref")
    assert resolve_policy_text("nova", "nova-ref")[0] == default.policy
    assert resolve_policy_text("nova", None) == (Policy("nova", NovaConfig()), "")
    assert resolve_policy_text("nova:base_ratio=0.4", "nova-ref")[0] == Policy("nova", NovaConfig(base_ratio=0.4))
    assert resolve_policy_text("fastvar", "nova-ref")[0] == parse_policy("fastvar")


def test_a_bundled_model_without_a_sweep_runs_the_built_in_config_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(BUNDLED_MODELS, "nova-ref", BundledModel("nova-ref", tmp_path))
    assert load_nova_default("nova-ref") is None
    policy, note = resolve_policy_text("nova", "nova-ref")
    assert policy == Policy("nova", NovaConfig()) and "has not been swept yet" in note and "\n" not in note


def test_a_broken_default_file_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(BUNDLED_MODELS, "nova-ref", BundledModel("nova-ref", tmp_path))
    (tmp_path / DEFAULT_FILE).write_text(json.dumps({"policy": "nova:speed=3"}))
    with pytest.raises(InvalidArgument, match=f"{DEFAULT_FILE} is not a NOVA default written by tools/nova_sweep.py"):
        load_nova_default("nova-ref")


def test_an_export_of_a_bundled_model_records_which_one():
    assert source_record(resolve_models(None, None, None))["bundled_model"] == "nova-ref"
    assert "bundled_model" not in source_record(resolve_models(None, None, "tiny"))


def test_generate_with_policy_nova_prints_the_cost_line(tmp_path):
    default = load_nova_default("nova-ref")
    r = run_cli("generate", "--policy", "nova", "--class", 1, "--out", tmp_path / "g.png")
    assert r.exit_code == 0, r.output
    if default.note:
        assert default.note in r.output
    else:  # the default kept quality by the rule: no cost line
        assert "policy nova on nova-ref" not in r.output


def test_model_option_selects_a_bundled_model_and_refuses_mixing_or_missing(tmp_path, monkeypatch):
    r = run_cli("generate", "--model", "nova-ref", "--preset", "tiny", "--out", tmp_path / "g.png")
    assert r.exit_code == 2 and "--model selects a bundled trained model" in r.output
    monkeypatch.setattr(model_source.BundledModel, "available", lambda self: self.name == "nova-ref")
    r = run_cli("generate", "--model", "nova-ref-16", "--out", tmp_path / "g.png")
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert "model nova-ref-16 is not installed" in r.output and "(installed: nova-ref)" in r.output
    assert not (tmp_path / "g.png").exists()
    r = run_cli("generate", "--model", "nova-ref", "--class", 2, "--out", tmp_path / "g.png")
    assert r.exit_code == 0 and "model: bundled reference model nova-ref" in r.output
