"""Ctrl-C during an engine build stops it at once: TensorRT would swallow a KeyboardInterrupt raised
in its callbacks, so the build is cancelled through the progress monitor, no plan is written, and
build-engines exits with 130."""
import os
import signal

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nova_deploy.engines import builder
from nova_deploy.engines.targets import parse_targets
from conftest import TARGET


def tiny_graph(path):
    """y = x @ W with a dynamic batch: enough for TensorRT to go through every build phase."""
    w = numpy_helper.from_array(np.eye(8, dtype=np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 8])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def interrupt_when_the_build_starts(monkeypatch):
    """SIGINT to this process from inside the build (its first phase), as a Ctrl-C would arrive;
    returns what the cancelling monitor answered at each step."""
    answers = []
    original = builder._cancelling_monitor

    def monitor(library, interrupted):
        cls = type(original(library, interrupted))

        class Interrupting(cls):
            def phase_start(self, phase_name, parent_phase, num_steps):
                if not answers:
                    answers.append("sent")
                    os.kill(os.getpid(), signal.SIGINT)

            def step_complete(self, phase_name, step):
                answers.append(cls.step_complete(self, phase_name, step))
                return answers[-1]

        return Interrupting()

    monkeypatch.setattr(builder, "_cancelling_monitor", monitor)
    return answers


def test_sigint_cancels_the_build_and_raises_keyboard_interrupt(rtx, tmp_path, monkeypatch):
    onnx_path = tiny_graph(tmp_path / "tiny.onnx")
    profile = {"x": ((1, 8), (2, 8), (4, 8))}
    target = parse_targets(rtx, [TARGET])[0]
    plan = builder.build_plan(rtx, onnx_path, profile, target, opt_level=0)
    assert plan.data  # uninterrupted, the graph builds

    answers = interrupt_when_the_build_starts(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        builder.build_plan(rtx, onnx_path, profile, target, opt_level=0)
    assert answers[0] == "sent" and False in answers[1:]  # the monitor told TensorRT to stop
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C behaves as usual again


def test_cli_build_engines_exits_130_and_writes_no_plan(built_copy, monkeypatch):
    from cli_runner import run_cli

    interrupt_when_the_build_starts(monkeypatch)
    r = run_cli("build-engines", built_copy, "--library", "tensorrt-rtx", "--compute-capability", "8.6",
                "--graph", "decoder")
    assert r.exit_code == 130, r.output
    assert "interrupted" in r.output
    assert not list((built_copy / "engines").glob("tensorrt-rtx-sm86/*"))
