"""What is decided without a GPU: cache keys, profiles, targets, the library shim, I/O matching,
bindings and the shared device memory."""
import pytest
import torch

from nova_deploy.engines.cache_key import KEY_FIELDS, engine_key
from nova_deploy.engines.errors import EngineError
from nova_deploy.engines.io_plan import bindings, graph_bucket, match_engine_io, shapes_of, shared_device_memory
from nova_deploy.engines.library import Library, load_library
from nova_deploy.engines.profiles import check_in_profile, check_max_batch, narrow_to_batch
from nova_deploy.engines.targets import Target, parse_targets
from nova_deploy.errors import BackendUnavailable, InvalidArgument
from nova_deploy.export.spec import build_spec
from nova_deploy.models.presets import get_preset


@pytest.fixture(scope="module")
def spec():
    p = get_preset("nova-ref")
    return build_spec(p.var, p.vae, max_batch=4)


FIELDS = {"format": 1, "onnx_sha256": "a" * 64, "weights_sha256": "b" * 64, "library": "tensorrt-rtx",
          "library_version": "1.7", "target": "sm89", "profile": {"x": {"min": [1], "opt": [2], "max": [4]}},
          "options": {"opt_level": 3, "max_batch": 4}}


def test_cache_key_changes_with_every_field_and_only_then():
    key = engine_key(FIELDS)
    assert engine_key(dict(reversed(list(FIELDS.items())))) == key  # order does not matter
    for f in KEY_FIELDS:
        changed = dict(FIELDS, **{f: FIELDS[f] + "x" if isinstance(FIELDS[f], str) else {"other": 1}})
        assert engine_key(changed) != key, f
    with pytest.raises(KeyError, match="weights_sha256"):
        engine_key({k: v for k, v in FIELDS.items() if k != "weights_sha256"})


def test_max_batch_narrows_the_batch_dims_only(spec):
    g = narrow_to_batch(spec.graph("scale_03"), 2)
    prof = g.profile()
    C = get_preset("nova-ref").var.embed_dim
    assert prof["x_BlC"] == ((2, 16, C), (4, 16, C), (4, 16, C))
    assert prof["keep_idx_0"][2] == (4, 16)  # kept tokens keep the export's range
    assert narrow_to_batch(spec.graph("decoder"), 3).profile()["f_hat_BChw"][2][0] == 3
    assert check_max_batch(spec, None) == 4 and check_max_batch(spec, 1) == 1
    for bad in (0, 5, True, 2.0):
        with pytest.raises(InvalidArgument, match=r"accepts 1\.\.4 images per call"):
            check_max_batch(spec, bad)


def test_shape_outside_profile_names_the_range(spec):
    prof = narrow_to_batch(spec.graph("decoder"), 2).profile()
    check_in_profile("decoder", prof, {"f_hat_BChw": (2, 16, 8, 8)})
    with pytest.raises(InvalidArgument, match=r"input f_hat_BChw axis 0 is 3, outside the engine's profile 1\.\.2"):
        check_in_profile("decoder", prof, {"f_hat_BChw": (3, 16, 8, 8)})


class FakeCapabilities:
    __members__ = {"NONE": 0, "CURRENT": 1, "SM75": 2, "SM80": 3, "SM86": 4, "SM89": 5, "SM120": 6}


class FakeTrt:
    ComputeCapability = FakeCapabilities


def test_targets_rtx_and_tensorrt():
    rtx = Library("tensorrt-rtx", FakeTrt, "1.7.1")
    assert parse_targets(rtx, ["8.9", "sm_120", "8.9"]) == [Target("sm89"), Target("sm120")]
    assert parse_targets(rtx, []) == [Target("portable")]
    with pytest.raises(InvalidArgument, match=r"9\.0: TensorRT-RTX 1\.7\.1 builds for 7\.5, 8\.0, 8\.6, 8\.9, 12\.0"):
        parse_targets(rtx, ["9.0"])
    with pytest.raises(InvalidArgument, match="expected MAJOR.MINOR"):
        parse_targets(rtx, ["ampere"])
    assert Target("sm89").runs_on((8, 9)) and not Target("sm89").runs_on((8, 6))
    assert Target("portable").runs_on((12, 0)) and not Target("portable").runs_on((7, 5))
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="no CUDA GPU here; build ahead of time with --library tensorrt-rtx"):
            parse_targets(Library("tensorrt", FakeTrt, "10.9"), [])


def test_missing_library_says_how_to_install(monkeypatch):
    import importlib

    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: (_ for _ in ()).throw(ImportError("no module")) if "tensorrt" in name
                        else real(name, *a))
    with pytest.raises(BackendUnavailable, match="tensorrt-rtx is not installed.*pip install tensorrt-rtx"):
        load_library("tensorrt-rtx")
    with pytest.raises(InvalidArgument, match="valid: tensorrt-rtx, tensorrt"):
        load_library("trt")


def test_engine_io_must_match_the_graph(spec):
    g = spec.graph("decoder")
    match_engine_io(g, {"f_hat_BChw": True, "img_B3HW": False})
    with pytest.raises(EngineError, match=r"missing \['img_B3HW'\]; unexpected \['logits'\]"):
        match_engine_io(g, {"f_hat_BChw": True, "logits": False})
    with pytest.raises(EngineError, match=r"wrong direction \['img_B3HW'\]"):
        match_engine_io(g, {"f_hat_BChw": True, "img_B3HW": True})


def test_bindings_shared_memory_and_graph_buckets(spec):
    g = spec.graph("decoder")
    S = get_preset("nova-ref").vae.image_size
    feeds = {"f_hat_BChw": torch.zeros(2, 16, 8, 8)}
    outs = {"img_B3HW": torch.zeros(2, 3, S, S)}
    binds = bindings(g, feeds, outs)
    assert [(b.name, b.is_input, b.shape) for b in binds] == [("f_hat_BChw", True, (2, 16, 8, 8)),
                                                             ("img_B3HW", False, (2, 3, S, S))]
    assert binds[1].address == outs["img_B3HW"].data_ptr()  # written in place, no copy
    assert shapes_of(binds) == {"f_hat_BChw": (2, 16, 8, 8)}
    assert shared_device_memory({"scale_00": 10, "scale_06": 300, "decoder": 120}) == 300
    same = bindings(g, feeds, outs)
    other_buffer = bindings(g, feeds, {"img_B3HW": torch.zeros(2, 3, S, S)})
    assert graph_bucket(g, binds) == graph_bucket(g, same)
    assert graph_bucket(g, binds) != graph_bucket(g, other_buffer)  # a replay would write the old buffer
