"""bench input errors that need no export: one line, exit 2."""
import pytest

from cli_runner import run_cli


@pytest.mark.parametrize("args, message", [
    (("--engines", "{tmp}/nowhere"), "error: {tmp}/nowhere: no such export (no manifest.json)"),
    (("--preset", "d16"), "error: --preset d16 alone builds random weights: add --random-weights"),
    (("--random-weights",), "error: --random-weights goes with --preset alone"),
    (("--engines", "{tmp}", "--out", "{tmp}/missing"), "error: output directory {tmp}/missing does not exist"),
])
def test_bad_sources_are_one_line_and_exit_2(tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    r = run_cli("bench", *args, *([] if "--out" in args else ["--out", tmp_path]))
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines()[-1] == message.format(tmp=tmp_path) or \
        r.output.strip().splitlines()[-1].startswith(message.format(tmp=tmp_path))
    assert "Traceback" not in r.output
