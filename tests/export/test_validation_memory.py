"""Validation's memory: the reference runs are made one graph at a time and dropped once compared,
and bf16 emulation stores each weight once for all graphs (both once held d16 exports near 24 GB)."""
import gc
import weakref

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.export.model_check import configs_of
from nova_deploy.export.shared_weights import SharedWeights
from nova_deploy.export.spec import PruneRange, build_spec
from nova_deploy.export.reference import Case, reference_runs
from nova_deploy.export.validate import emulated_copies
from export_sources import one_thread, randomised_source  # noqa: F401  (one_thread: autouse fixture)


def test_reference_runs_follow_the_spec_and_free_each_run():
    src = randomised_source("tiny")
    var_cfg, vae_cfg = configs_of(src.var, src.vae)
    spec = build_spec(var_cfg, vae_cfg, max_batch=2, prune=PruneRange(first_scale=2))
    names, pending, freed = [], [], 0

    def on_run(name, run):
        nonlocal pending, freed
        names.append(name)
        gc.collect()
        # the last scale's K/V prefixes and logits (the bulk of a case) are gone once it was compared
        assert all(r() is None for r in pending), f"{name}: an earlier scale's tensors are still alive"
        freed += len(pending)
        pending = []
        if name.startswith("scale_"):
            pending = [weakref.ref(t) for n, t in list(run.feeds.items()) + list(run.expected.items())
                       if n.startswith(("k_prefix_", "v_prefix_")) or n == "logits_BlV"]

    reference_runs(spec, src.var, Case(2, "half"), seed=0, on_run=on_run)
    assert sorted(names) == sorted(g.name for g in spec.graphs)
    assert names[:3] == ["cond", "scale_00", "next_input_00"] and names[-2:] == ["final_fhat", "decoder"]
    assert freed >= (len(spec.patch_nums) - 2) * (2 * src.var.depth + 1)


def _graph(name: str, weight: str) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [1, 8])
    init = TensorProto(name=weight, data_type=TensorProto.BFLOAT16, dims=[8, 8])
    init.data_location = TensorProto.EXTERNAL
    for k, v in (("location", WEIGHTS_FILE), ("offset", "0"), ("length", str(8 * 8 * 2))):
        init.external_data.add(key=k, value=v)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", weight], ["y"])], name, [x], [y], [init])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def test_bf16_emulation_shares_one_widened_copy_of_each_weight(tmp_path):
    from types import SimpleNamespace

    w = torch.randn(8, 8).to(torch.bfloat16)
    (tmp_path / WEIGHTS_FILE).write_bytes(w.view(torch.int16).numpy().tobytes())
    graphs = []
    for name in ("a", "b"):
        onnx.save_model(_graph(name, f"w_{name}"), str(tmp_path / f"{name}.onnx"))
        graphs.append(SimpleNamespace(name=name, file=f"{name}.onnx"))
    work = tmp_path / "work"
    work.mkdir()
    copies = emulated_copies(tmp_path, graphs, work)
    assert (work / WEIGHTS_FILE).stat().st_size == 8 * 8 * 4  # one fp32 copy for both graphs
    weights = SharedWeights(work / WEIGHTS_FILE)
    x = torch.randn(1, 8).to(torch.bfloat16)
    want = (x.float() @ w.float()).to(torch.bfloat16).float().numpy()
    for name in ("a", "b"):
        m = onnx.load(str(copies[name]), load_external_data=False)
        assert m.graph.initializer[0].data_type == TensorProto.FLOAT
        so = ort.SessionOptions()
        weights.add_to(so, copies[name])
        sess = ort.InferenceSession(str(copies[name]), so, providers=["CPUExecutionProvider"])
        got = sess.run(None, {"x": x.float().numpy()})[0]
        np.testing.assert_array_equal(got, want)  # widened exactly, rounded to bf16 after the MatMul
    with pytest.raises(ValueError, match="is external"):
        from nova_deploy.export.bf16_emulation import emulate_bf16
        emulate_bf16(onnx.load(str(tmp_path / "a.onnx"), load_external_data=False))
