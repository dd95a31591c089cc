"""The spec's I/O vocabulary: element types agree with ONNX and torch, derived dims derive."""
from dataclasses import asdict

import onnx
import pytest
import torch

from nova_deploy.errors import InvalidArgument
from nova_deploy.export.spec import CFG_ROWS, PruneRange, build_spec
from nova_deploy.export.vocabulary import ELEMENT_TYPES, PRECISION_ELEMENT_TYPE
from nova_deploy.models.presets import get_preset


def test_element_types_are_onnx_and_torch_types():
    for name, e in ELEMENT_TYPES.items():
        assert onnx.TensorProto.DataType.Value(name.upper().replace("FLOAT32", "FLOAT")) == e.onnx
        assert onnx.helper.tensor_dtype_to_np_dtype(e.onnx).itemsize == torch.tensor([], dtype=e.torch).element_size()
    assert {p: e.torch for p, e in PRECISION_ELEMENT_TYPE.items()} == {
        "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def spec():
    preset = get_preset("small")
    return build_spec(preset.var, preset.vae, max_batch=4, prune=PruneRange(first_scale=2, fill_mode="area"))


def test_cfg_rows_are_declared_as_twice_the_batch(spec):
    for g in spec.graphs:
        for d in g.dims:
            if d.name == CFG_ROWS:
                assert (d.base, d.factor) == ("batch", 2)
                assert g.to_json()["dims"][CFG_ROWS]["derived"] == {"base": "batch", "factor": 2}
    scale = spec.scale_graph(3)
    assert scale.complete_sizes({"batch2": 6})["batch"] == 3
    assert spec.graph("cond").complete_sizes({"batch": 3})["batch2"] == 6
    with pytest.raises(InvalidArgument, match=r"batch2 \(5\) must be 2 x batch \(2\)"):
        scale.complete_sizes({"batch2": 5})


def test_read_sizes_names_the_input_outside_its_range(spec):
    g = spec.graph("next_input_00")
    shapes = {t.name: g.shape_at(t, {"batch": 2, "batch2": 4}) for t in g.inputs}
    assert g.read_sizes(shapes) == {"batch": 2, "batch2": 4}
    shapes["h_BChw"] = (5,) + tuple(shapes["h_BChw"][1:])
    with pytest.raises(InvalidArgument, match="input h_BChw axis 0 \\(batch\\) is 5, but batch is 2"):
        g.read_sizes(shapes)


def test_the_fill_mode_round_trips_through_the_manifest(spec):
    from nova_deploy.export.manifest import spec_from_manifest

    manifest = {**spec.to_json(), "model": {"var_config": asdict(spec.var), "vqvae_config": asdict(spec.vae)}}
    assert spec_from_manifest(manifest).prune.fill_mode == "area"
    with pytest.raises(InvalidArgument, match="fill_mode must be one of"):
        PruneRange(fill_mode="lanczos")
