"""Checks of a generation request, made once at the top of the PyTorch sampler's and the runtime's
generate(), before anything is allocated: a bad top-k, seed or class id fails there in one line,
not in the middle of the scale loop."""
from typing import Optional

from nova_deploy.bounds import check_class_ids, check_seed, check_top_k
from nova_deploy.errors import require
from nova_deploy.memory_estimate import generation_bytes, require_memory

# The PyTorch sampler is the reference path: beyond this many images per call a batch only grows
# its K/V cache and logits, not its speed; the runtime's limit is its export's --max-batch.
SAMPLER_MAX_BATCH = 1024


def _check_labels(labels, num_classes: int) -> None:
    if isinstance(labels, (list, tuple)):  # an int is one id for all (negative: the null class); a
        check_class_ids(labels, num_classes)  # tensor is int64 already, range-checked in resolve_labels


def check_sampler_request(var, batch: int, labels, seed: Optional[int], params) -> None:
    """For nova_deploy.sampler.generate(var, batch, labels, seed, params)."""
    require(int(batch) == batch and 1 <= batch <= SAMPLER_MAX_BATCH,
            f"batch of {batch} images: the PyTorch sampler takes 1..{SAMPLER_MAX_BATCH} per call "
            f"(generate in several calls, or export the model and use the runtime)")
    check_top_k(params.top_k, var.V)
    check_seed(seed)
    _check_labels(labels, var.num_classes)
    vae = var.vae
    need = generation_bytes(batch, var.depth, var.C, var.patch_nums, var.V, vae.encoder.conv_in.out_channels,
                            vae.ch_mult)
    require_memory(need, f"generating {batch} images in one call", "generate fewer images per call")


def check_runtime_request(spec, labels, seed: Optional[int], top_k: int) -> None:
    """For nova_deploy.runtime.pipeline.Pipeline.generate over an export of `spec`."""
    check_top_k(top_k, spec.vae.vocab_size)
    check_seed(seed)
    _check_labels(labels, spec.var.num_classes)
