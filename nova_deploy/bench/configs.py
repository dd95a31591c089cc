"""What a benchmark measures: configurations = runner x policy x batch.

A runner is a runtime backend over an export (`torch`, `onnxruntime`, `onnxruntime-prepack`,
`tensorrt`: the deployed path), `torch-reference`, the PyTorch reference sampler
(`nova_deploy.sampler.generate`, the official algorithm) on the exported model, or a peer:
`torch-compile`, the reference sampler with its scale step and decoder under torch.compile (what a
user would run instead of exporting), chosen with --backends like a runtime backend and run under
every policy. `torch-bf16-decoder` is the torch backend with its opt-in bf16 decoder (the image is
no longer the fp32 decoder's; fast where the CPU has native bf16); `torch-bf16` runs the
transformer in bf16 too (tokens change: `eval --engines DIR --backend torch-bf16` scores them). `onnxruntime` runs with MLAS pre-packing disabled
(one shared copy of the weights), `onnxruntime-prepack` with it enabled (per-session packed copies).

Policies are the CLI's (`none`, `nova`, `fastvar`, `fixed:R0,R1,...`) plus `fixed:nova-ref`: the
per-scale ratios NOVA's default config chooses on the reference model (see nova_ratios), mapped
onto the benchmarked model's scales.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from nova_deploy.errors import InvalidArgument
from nova_deploy.runtime.backends import BACKEND_VARIANTS
from nova_deploy.nova.policy import parse_policy, valid_forms

REFERENCE = "torch-reference"
TORCH_COMPILE = "torch-compile"
PEER_RUNNERS = (TORCH_COMPILE,)  # not the deployed path; every report compares the deployed path with them
# runner name -> (backend name, keyword arguments of the backend class)
RUNTIME_RUNNERS: Dict[str, Tuple[str, dict]] = {
    "torch": ("torch", {}),
    "torch-bf16-decoder": ("torch", {"decoder_bf16": True}),  # opt-in: changes the image (docs/RUNTIME.md)
    # opt-in: the transformer and decoder in bf16 over an fp32 export (changes tokens; docs/RUNTIME.md)
    "torch-bf16": BACKEND_VARIANTS["torch-bf16"],
    "onnxruntime": ("onnxruntime", {"share_prepacked": True}),
    "onnxruntime-prepack": ("onnxruntime", {"share_prepacked": False}),
    "tensorrt": ("tensorrt", {}),
}
# runners whose output is not the fp32 graphs': what changes, for every figure a report takes from them
CHANGES_OUTPUT = {"torch-bf16-decoder": "bf16 decoder: other pixels",
                  "torch-bf16": "bf16 transformer and decoder: other tokens (quality: eval --engines DIR --backend "
                                "torch-bf16)"}
NOVA_FIXED = "fixed:nova-ref"  # resolved by nova_ratios.nova_reference_ratios


@dataclass(frozen=True)
class Config:
    runner: str  # a key of RUNTIME_RUNNERS, a PEER_RUNNERS name, or REFERENCE
    policy: str  # as given: none | nova | fastvar | fixed:... | fixed:nova-ref
    batch: int

    @property
    def label(self) -> str:
        return f"{self.runner} {self.policy} b{self.batch}"

    @property
    def is_reference(self) -> bool:
        return self.runner == REFERENCE


def split_list(values: Sequence[str]) -> List[str]:
    """Repeatable, comma-separated CLI values -> one flat list without duplicates, order kept.
    Policy texts contain commas (`fixed:0,0.2`, `nova:base_ratio=0.2,r_max=0.5`), so after an item with
    a colon, a part that parses as a number or reads FIELD=VALUE continues that item."""
    out: List[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if out and ":" in out[-1] and (_is_number(part) or ("=" in part and ":" not in part)):
                out[-1] += "," + part
            else:
                out.append(part)
    return list(dict.fromkeys(out))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def parse_runners(values: Sequence[str]) -> List[str]:
    names = split_list(values)
    valid = ", ".join((*RUNTIME_RUNNERS, *PEER_RUNNERS))
    if not names:
        raise InvalidArgument(f"--backends names no backend; valid: {valid}")
    for n in names:
        if n not in RUNTIME_RUNNERS and n not in PEER_RUNNERS:
            hint = " (the reference sampler is added by --reference)" if n == REFERENCE else ""
            raise InvalidArgument(f"unknown backend {n!r}; valid: {valid}{hint}")
    return names


def parse_policies(values: Sequence[str]) -> List[str]:
    """Checks each policy's syntax now (the scale count is checked once the model is known)."""
    texts = split_list(values)
    if not texts:
        raise InvalidArgument(f"--policies names no policy; valid: {valid_forms(also_valid=(NOVA_FIXED,))}")
    for text in texts:
        if text != NOVA_FIXED:
            parse_policy(text, also_valid=(NOVA_FIXED,))
    return texts


def parse_batches(values: Sequence[str], max_batch: int) -> List[int]:
    out = []
    for text in split_list(values):
        try:
            b = int(text)
        except ValueError:
            raise InvalidArgument(f"--batch takes integers, got {text!r}") from None
        if b < 1:
            raise InvalidArgument(f"--batch must be >= 1, got {b}")
        if b > max_batch:
            raise InvalidArgument(f"--batch {b}: this export takes 1..{max_batch} images per call "
                                  f"(re-export with --max-batch {b} for more)")
        out.append(b)
    if not out:
        raise InvalidArgument("--batch names no batch size")
    return sorted(set(out))


def build_configs(runners: Sequence[str], policies: Sequence[str], batches: Sequence[int],
                  reference: bool) -> List[Config]:
    """Every runtime or peer runner x policy x batch; the reference sampler runs dense only (it is
    the official algorithm, the baseline)."""
    configs = [Config(r, p, b) for b in batches for r in runners for p in policies]
    if reference:
        configs += [Config(REFERENCE, "none", b) for b in batches]
    return configs
