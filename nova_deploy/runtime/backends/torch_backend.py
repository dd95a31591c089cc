"""PyTorch eager backend: the reference. Runs the very modules the graphs were traced from.

The model is reloaded from where the manifest says it came from (checkpoint files or a preset)
and must have the export's fingerprint, so that this backend computes what the graphs compute;
CPU or CUDA.
"""
from typing import Dict, Mapping, Optional

import torch

from nova_deploy.errors import BackendUnavailable, InvalidArgument
from nova_deploy.export.graphs import graph_module
from nova_deploy.export.manifest import model_fingerprint
from nova_deploy.export.precision import to_precision
from nova_deploy.export.spec import GraphSpec, build_spec
from nova_deploy.export.vocabulary import PRECISIONS
from nova_deploy.runtime.backend import Backend


def load_source_models(export, device: torch.device):
    """(var, vae) from the manifest's model source, checked against the export's fingerprint."""
    from nova_deploy.model_source import resolve_models

    src = export.manifest["model"].get("source") or {}
    if src.get("kind") == "checkpoint":
        models = resolve_models(src["var"], src["vae"], src.get("preset"))
    elif src.get("kind") == "preset":
        models = resolve_models(None, None, src["preset"], random_seed=int(src.get("seed", 0)))
    else:
        raise InvalidArgument(f"{export.path}: the manifest names no model source the torch backend can load")
    if model_fingerprint(models.var, models.vae) != export.fingerprint:
        raise InvalidArgument(f"{export.path}: the model at the manifest's source ({models.description}) is not the "
                              f"one that was exported (fingerprints differ); the torch backend cannot reproduce it")
    return models.var.to(device), models.vae.to(device)


def deployed_module(g: GraphSpec, spec, var, vae, device: torch.device,
                    decoder_bf16: bool = False) -> torch.nn.Module:
    """The module this backend runs for graph g: the one the graph was traced from, on device. On
    CPU the decoder runs channels_last (DecoderGraph.to_channels_last); on CUDA it is unmeasured
    and stays as traced. decoder_bf16: the decoder under bf16 autocast (DecoderGraph.use_bf16),
    an opt-in that changes the image."""
    module = graph_module(g, spec, var, vae).to(device)
    if g.kind == "decoder":
        if device.type == "cpu":
            module.to_channels_last()
        if decoder_bf16:
            module.use_bf16()
    return module


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, export, device, threads: Optional[int] = None, decoder_bf16: bool = False,
                 transformer_precision: Optional[str] = None):
        """transformer_precision: run the transformer at this precision instead of the export's (an
        opt-in that changes tokens: e.g. bf16 on a CPU with native bf16, over an fp32 export). The
        modules are those a bf16 export of the model would trace; the export's fp32 buffers are cast
        to them at each call, and their outputs written back at the buffers' precision."""
        super().__init__(export, device, threads)
        self.decoder_bf16 = decoder_bf16  # off by default: the image is no longer the fp32 decoder's
        precision = transformer_precision or self.spec.precision
        if precision not in PRECISIONS:
            raise InvalidArgument(f"backend torch: transformer precision must be one of {', '.join(PRECISIONS)}, "
                                  f"got {precision!r}")
        self.run_spec = self.spec if precision == self.spec.precision else build_spec(
            self.spec.var, self.spec.vae, precision, self.spec.max_batch, self.spec.prune, self.spec.opset)
        # graph -> {input: dtype its module takes} where the export's buffers hold another dtype
        self._casts: Dict[str, Dict[str, torch.dtype]] = {}
        for g in self.spec.graphs:
            wanted = {t.name: t.torch_dtype for t in self.run_spec.graph(g.name).inputs}
            cast = {t.name: wanted[t.name] for t in g.inputs if wanted[t.name] != t.torch_dtype}
            if cast:
                self._casts[g.name] = cast

    @property
    def label(self) -> str:
        changes = ([f"transformer {self.run_spec.precision}"] if self.run_spec is not self.spec else []) + \
                  (["bf16 decoder"] if self.decoder_bf16 else [])
        return f"{self.name} ({', '.join(changes)})" if changes else self.name

    def activate(self) -> None:
        if self.active:
            return
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("backend torch: device cuda requested but torch sees no CUDA device")
        var, vae = load_source_models(self.export, self.device)
        lp = to_precision(var, self.run_spec.precision)
        self.modules: Dict[str, torch.nn.Module] = {
            g.name: deployed_module(g, self.run_spec, lp, vae, self.device, self.decoder_bf16)
            for g in self.run_spec.graphs}
        self.active = True

    def deactivate(self) -> None:
        self.modules = {}
        self.active = False

    @torch.no_grad()
    def _run(self, g: GraphSpec, feeds: Mapping[str, torch.Tensor], outputs: Dict[str, torch.Tensor]) -> None:
        cast = self._casts.get(g.name)
        if cast:
            feeds = {name: value.to(cast[name]) if name in cast else value for name, value in feeds.items()}
        for name, value in self.modules[g.name].compute(feeds).items():
            outputs[name].copy_(value)
