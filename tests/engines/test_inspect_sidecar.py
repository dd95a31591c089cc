"""`inspect` on a plan whose sidecar lacks what it shows: one line saying the plan is not usable."""
import json

import pytest

from cli_runner import run_cli


@pytest.mark.parametrize("drop", ["fields", "profile", "network"])
def test_sidecar_without_a_shown_field_is_one_line(tmp_path, drop):
    plan = tmp_path / "scale_00.plan"
    plan.write_bytes(b"plan bytes")
    sidecar = {"key": "0" * 64, "graph": "scale_00", "plan_bytes": 10, "build_seconds": 1.0,
               "fields": {"library": "tensorrt-rtx"}, "profile": {"x": {"min": [1], "opt": [1], "max": [2]}},
               "network": {"layers": 1, "by_type": {}, "by_output_dtype": {}}}
    del sidecar[drop]
    plan.with_suffix(".json").write_text(json.dumps(sidecar))
    r = run_cli("inspect", plan)
    assert r.exit_code == 0 and "Traceback" not in r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "NOT USABLE: its sidecar lacks" in lines[0] and drop in lines[0]
