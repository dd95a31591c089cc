"""What every backend shares: feeds checked by name, dtype, layout and shape against the spec,
output shapes derived from the input dims, caller buffers used in place. No export needed."""
import pytest
import torch

from nova_deploy.errors import BackendUnavailable, InvalidArgument
from nova_deploy.export.spec import build_spec
from nova_deploy.models.presets import get_preset
from nova_deploy.runtime.backend import Backend, check_feeds, output_buffers
from nova_deploy.runtime.backends import backend_class

SPEC = build_spec(get_preset("small").var, get_preset("small").vae, max_batch=2)


def scale_feeds(si: int, batch: int = 2, kept: int = None, prefix: int = None):
    g = SPEC.scale_graph(si)
    sizes = {d.name: d.max for d in g.dims}
    sizes["batch2"] = 2 * batch
    for d in g.dims:
        if d.name.startswith("kept_") and kept is not None:
            sizes[d.name] = kept
        if d.name.startswith("prefix_") and prefix is not None:
            sizes[d.name] = prefix
    feeds = {}
    for t in g.inputs:
        shape = g.shape_at(t, sizes)
        feeds[t.name] = (torch.zeros(shape, dtype=torch.int64) if t.dtype == "int64" else torch.zeros(shape))
    return g, feeds, sizes


def test_feeds_give_every_dim_and_the_outputs_their_shapes():
    g, feeds, sizes = scale_feeds(5, batch=1, kept=7, prefix=40)
    got = check_feeds(g, feeds, torch.device("cpu"))
    assert got["batch2"] == 2 and got["kept_0"] == 7 and got["prefix_0"] == 40 and got["batch"] == 1
    outs = output_buffers(g, got, torch.device("cpu"), {})
    assert outs["k_new_0"].shape == (2, SPEC.var.num_heads, 7, SPEC.var.embed_dim // SPEC.var.num_heads)
    assert outs["logits_BlV"].shape == (2, 36, SPEC.vae.vocab_size)


def test_cond_graph_outputs_get_twice_the_batch():
    g = SPEC.graph("cond")
    sizes = check_feeds(g, {"label_B": torch.zeros(2, dtype=torch.int64)}, torch.device("cpu"))
    assert output_buffers(g, sizes, torch.device("cpu"), {})["head_ada_B2C"].shape[0] == 4


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.pop("x_BlC"), "missing inputs ['x_BlC']"),
    (lambda f: f.__setitem__("extra", torch.zeros(1)), "unexpected inputs ['extra']"),
    (lambda f: f.__setitem__("x_BlC", f["x_BlC"].half()), "dtype torch.float16"),
    (lambda f: f.__setitem__("x_BlC", f["x_BlC"][:, :, :5]), "axis 2 is 5"),
    (lambda f: f.__setitem__("x_BlC", f["x_BlC"].transpose(0, 1).contiguous().transpose(0, 1)), "not contiguous"),
    (lambda f: f.__setitem__("keep_idx_0", f["keep_idx_0"][:2]), "but batch2 is 4"),
    (lambda f: f.__setitem__("keep_idx_0", torch.zeros(4, 37, dtype=torch.int64)), "outside the exported range 1..36"),
    (lambda f: f.__setitem__("x_BlC", f["x_BlC"][None]), "rank 3"),
])
def test_bad_feeds_name_what_is_wrong(mutate, message):
    g, feeds, _ = scale_feeds(5)
    mutate(feeds)
    with pytest.raises(InvalidArgument) as e:
        check_feeds(g, feeds, torch.device("cpu"))
    assert message in str(e.value) and g.name in str(e.value)


def test_output_buffers_are_used_in_place_and_checked():
    g, feeds, _ = scale_feeds(5, batch=1, kept=3, prefix=10)
    sizes = check_feeds(g, feeds, torch.device("cpu"))
    mine = torch.empty(2, 36, SPEC.vae.vocab_size)
    assert output_buffers(g, sizes, torch.device("cpu"), {"logits_BlV": mine})["logits_BlV"] is mine
    with pytest.raises(InvalidArgument, match="output buffer logits_BlV"):
        output_buffers(g, sizes, torch.device("cpu"), {"logits_BlV": torch.empty(2, 35, SPEC.vae.vocab_size)})
    with pytest.raises(InvalidArgument, match="no outputs named"):
        output_buffers(g, sizes, torch.device("cpu"), {"nope": mine})


class Recording(Backend):
    name = "recording"

    def activate(self):
        self.active = True

    def deactivate(self):
        self.active = False

    def _run(self, g, feeds, outputs):
        self.last = (g.name, outputs)


def test_infer_checks_before_the_backend_runs():
    backend = Recording(type("E", (), {"spec": SPEC})(), "cpu")
    g, feeds, _ = scale_feeds(2)
    with pytest.raises(RuntimeError, match="before activate"):
        backend.infer(g.name, feeds)
    backend.activate()
    feeds.pop("ada_NB6C")
    with pytest.raises(InvalidArgument):
        backend.infer(g.name, feeds)
    assert not hasattr(backend, "last")


def test_unknown_backend_and_missing_device_are_clear():
    with pytest.raises(InvalidArgument, match="unknown backend 'trt'; valid: torch, onnxruntime, tensorrt"):
        backend_class("trt")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the no-device error cannot happen")
    for name in ("torch", "onnxruntime"):
        with pytest.raises(BackendUnavailable, match="no CUDA device"):
            backend_class(name)(type("E", (), {"spec": SPEC})(), "cuda").activate()


def test_infer_owned_checks_each_shape_set_once_and_refuses_bad_ones(monkeypatch):
    import nova_deploy.runtime.backend as backend_module
    backend = Recording(type("E", (), {"spec": SPEC})(), "cpu")
    g, feeds, sizes = scale_feeds(5, batch=1, kept=7, prefix=40)
    out = output_buffers(g, check_feeds(g, feeds, torch.device("cpu")), torch.device("cpu"), {})
    with pytest.raises(RuntimeError, match="before activate"):
        backend.infer_owned(g.name, feeds, out)
    backend.activate()
    calls = []
    real_check = backend_module.check_feeds
    monkeypatch.setattr(backend_module, "check_feeds", lambda *a: calls.append(a[0].name) or real_check(*a))
    for _ in range(3):
        assert backend.infer_owned(g.name, feeds, out) is out and backend.last == (g.name, out)
    assert calls == [g.name]  # checked the first time only
    wider = dict(feeds, x_BlC=torch.zeros(2, 35, SPEC.var.embed_dim))
    with pytest.raises(InvalidArgument, match="axis 1 is 35"):  # a new shape set is checked in full
        backend.infer_owned(g.name, wider, out)
    with pytest.raises(InvalidArgument, match="needs a buffer for every output; missing \\['logits_BlV'\\]"):
        backend.infer_owned(g.name, feeds, {k: v for k, v in out.items() if k != "logits_BlV"})
    small = dict(out, logits_BlV=torch.empty(2, 30, SPEC.vae.vocab_size))
    with pytest.raises(InvalidArgument, match="output buffer logits_BlV"):
        backend.infer_owned(g.name, feeds, small)
    assert calls == [g.name] * 4
