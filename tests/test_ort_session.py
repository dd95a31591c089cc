"""The one ONNX Runtime session factory: the options validation and the runtime both get."""
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from nova_deploy.errors import BackendUnavailable, InvalidArgument
from nova_deploy.ort_session import open_session, providers_for


def test_providers_follow_the_device():
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(InvalidArgument, match="runs on cpu or cuda, not mps"):
        providers_for("mps")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the no-device error cannot happen")
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        providers_for("cuda")


def test_session_options_are_the_projects(tmp_path):
    path = tmp_path / "add.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "add", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    session = open_session(path, threads=1, optimize=False)
    so = session.get_session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    assert not so.enable_cpu_mem_arena and not so.enable_mem_pattern
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert so.graph_optimization_level.name == "ORT_DISABLE_ALL"
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert np.array_equal(session.run(None, {"x": np.array([1, 2], np.float32)})[0], [2, 4])
    spinning = open_session(path, threads=2, spin=True, memory_arena=True).get_session_options()
    assert spinning.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert spinning.enable_cpu_mem_arena and spinning.intra_op_num_threads == 2
