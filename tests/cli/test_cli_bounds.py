"""Every value a user gives has its range checked before any work: one line `error: ...` naming the
option and the valid range, exit 2, no traceback, nothing written (issue 25 items 4-5)."""
import pickle

import pytest

from cli_runner import run_cli
from nova_deploy import bounds


def one_error_line(r, message):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "Usage:" not in r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, r.output
    return last


@pytest.mark.parametrize("args, message", [
    (("--class", 10 ** 20), "--class [100000000000000000000] out of range: valid are 0..9"),
    (("--class", -1), "--class [-1] out of range: valid are 0..9"),
    (("--seed", 10 ** 23), f"--seed must be <= {2 ** 63 - 1}, got {10 ** 23}"),
    (("--seed", -5), "--seed must be >= 0, got -5"),
    (("--top-k", 65), "--top-k must be <= 64, got 65"),  # preset tiny: a 64-token vocabulary
    (("--device", "bogus"), "--device 'bogus' is not a device; valid: cpu, cuda, cuda:N"),
    (("--device", "cuda"), "--device applies to the runtime (--engines DIR)"),
    (("--threads", -1), "--threads must be >= 1, got -1"),
    (("--threads", 100000), f"--threads must be <= {bounds.max_threads()}, got 100000"),
    (("--class", 1) * (1025), "batch of 1025 images: the PyTorch sampler takes 1..1024 per call"),
])
def test_generate_values_out_of_range(tmp_path, args, message):
    out = tmp_path / "g.png"
    one_error_line(run_cli("generate", "--preset", "tiny", "--out", out, *args), message)
    assert not out.exists()


def test_batch_beyond_available_memory_is_refused_before_sampling(tmp_path, monkeypatch):
    from nova_deploy import memory_estimate

    monkeypatch.setattr(memory_estimate, "available_bytes", lambda: 10 ** 6)
    r = run_cli("generate", "--preset", "tiny", "--class", 1, "--class", 2, "--out", tmp_path / "g.png")
    one_error_line(r, "generating 2 images in one call needs at least")
    assert "more than the 0.0 GB available here; generate fewer images per call" in r.output


def test_directory_given_as_checkpoint_or_output_file(tmp_path):
    one_error_line(run_cli("info", tmp_path), f"CHECKPOINT {tmp_path} is a directory; give a checkpoint file")
    one_error_line(run_cli("generate", "--checkpoint", tmp_path, "--vae", tmp_path),
                   f"--checkpoint {tmp_path} is a directory")
    one_error_line(run_cli("generate", "--preset", "tiny", "--out", tmp_path),
                   f"--out {tmp_path} is a directory; give the path of a file to write")


def test_protocol_4_pickle_is_one_line_without_torch_warning(tmp_path):
    path = tmp_path / "p4.pth"
    with open(path, "wb") as f:
        pickle.dump({"weight": [1.0, 2.0]}, f, protocol=4)
    r = run_cli("info", path)
    line = one_error_line(r, f"{path}: refused to unpickle")
    assert len(r.output.strip().splitlines()) == 1, r.output  # no "UserWarning: Detected pickle protocol 4"
    assert "weights_only" not in line  # torch's advice to unpickle anyway is not repeated


def test_export_max_batch_beyond_memory_is_refused_up_front(tmp_path):
    out = tmp_path / "x"
    r = run_cli("export", "--preset", "tiny", "--out", out, "--max-batch", 1000000)
    one_error_line(r, "--max-batch 1000000: validating the export at that batch needs at least")
    assert "lower --max-batch" in r.output and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (("--batch", "0"), "--batch must be >= 1, got 0"),
    (("--threads", "0"), "--threads must be >= 1, got 0"),
    (("--seed", "-1"), "--seed must be >= 0, got -1"),
    (("--device", "gpu"), "--device 'gpu' is not a device"),
])
def test_bench_values_out_of_range(tmp_path, args, message):
    last = one_error_line(run_cli("bench", "--preset", "tiny", "--random-weights", "--out", tmp_path, *args), message)
    assert "--max-batch 0" not in last
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [("train",), ("train-classifier",)])
def test_train_threads_and_seed(tmp_path, command):
    one_error_line(run_cli(*command, "--threads", 10 ** 6), f"--threads must be <= {bounds.max_threads()}")
    one_error_line(run_cli(*command, "--seed", 2 ** 64), f"--seed must be <= {2 ** 63 - 1}")
