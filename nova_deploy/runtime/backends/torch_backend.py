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
from nova_deploy.export.spec import GraphSpec
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

    def __init__(self, export, device, threads: Optional[int] = None, decoder_bf16: bool = False):
        super().__init__(export, device, threads)
        self.decoder_bf16 = decoder_bf16  # off by default: the image is no longer the fp32 decoder's

    def activate(self) -> None:
        if self.active:
            return
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("backend torch: device cuda requested but torch sees no CUDA device")
        var, vae = load_source_models(self.export, self.device)
        lp = to_precision(var, self.spec.precision)
        self.modules: Dict[str, torch.nn.Module] = {g.name: deployed_module(g, self.spec, lp, vae, self.device,
                                                                         self.decoder_bf16)
                                                    for g in self.spec.graphs}
        self.active = True

    def deactivate(self) -> None:
        self.modules = {}
        self.active = False

    @torch.no_grad()
    def _run(self, g: GraphSpec, feeds: Mapping[str, torch.Tensor], outputs: Dict[str, torch.Tensor]) -> None:
        for name, value in self.modules[g.name].compute(feeds).items():
            outputs[name].copy_(value)
