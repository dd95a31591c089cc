"""The runtime orchestrator: per-scale graphs on a backend, NOVA's decisions between them.

    pipe = Pipeline.from_dir("engines/nova-ref", backend="onnxruntime")
    result = pipe.generate([3, 7], seed=0, cfg=1.5, policy="nova", want_trace=True)
    result.images  # B 3 H W in [0, 1]

The scale loop is nova_deploy.generation's, the one the PyTorch sampler runs; here it runs on
a GraphExecutor: feeds from preallocated buffers -> scale graph (outputs bound into the buffers)
-> K/V appended -> CFG -> policy observes -> sampling -> token embedding -> next_input graph
(f_hat update, next scale's tokens); then the decoder. Sampling draws from a torch generator in
the reference sampler's order, so with fp32 graphs the runtime produces the tokens of
`nova_deploy.sampler.generate` for the same seed, labels and policy.

Threads: one Pipeline may be called from several threads at once. Backends are shared (ONNX
Runtime sessions and torch modules run concurrently; TensorRT contexts are locked per backend);
each call takes its own buffer set from a pool keyed by batch size, so concurrent calls never
share a buffer, and memory grows by one buffer set per concurrent call.
"""
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import torch

from nova_deploy.artifacts.export_dir import ExportDir
from nova_deploy.errors import require
from nova_deploy.export.manifest import open_export
from nova_deploy.generation.inputs import resolve_labels
from nova_deploy.generation.loop import generate as run_generation
from nova_deploy.nova.model_defaults import resolve_policy_text
from nova_deploy.nova.policy import Policy, parse_policy
from nova_deploy.request_checks import check_runtime_request
from nova_deploy.runtime.backend import Backend
from nova_deploy.runtime.backends import open_backend
from nova_deploy.runtime.buffers import GenerationBuffers
from nova_deploy.runtime.graph_executor import GraphExecutor
from nova_deploy.runtime.policy_fit import check_policy_fits
from nova_deploy.runtime.timing import GraphClock, Timing
from nova_deploy.sampling import SamplingParams, random_streams


@dataclass
class RuntimeResult:
    images: torch.Tensor  # B 3 H W in [0, 1], float32, on the pipeline's device
    tokens: List[torch.Tensor]  # sampled ids per scale, B x pn*pn
    trace: Optional[List[dict]] = None
    timing: Timing = field(default_factory=Timing)


class BufferPool:
    """Buffer sets by batch size; a call checks one out and returns it, so concurrent calls never share."""

    def __init__(self, spec, device):
        self.spec, self.device = spec, device
        self._free: Dict[int, List[GenerationBuffers]] = {}
        self._lock = threading.Lock()

    def take(self, batch: int) -> GenerationBuffers:
        with self._lock:
            free = self._free.get(batch)
            if free:
                return free.pop()
        return GenerationBuffers(self.spec, batch, self.device)

    def give(self, bufs: GenerationBuffers) -> None:
        with self._lock:
            self._free.setdefault(bufs.batch, []).append(bufs)


class Pipeline:
    def __init__(self, export: ExportDir, backend: Backend):
        self.export, self.backend, self.spec = export, backend, export.spec
        self.device = backend.device
        self.codebook_VC = export.codebook_VC.to(self.device)
        self.buffers = BufferPool(self.spec, self.device)
        # `nova` on an export of a bundled model means that model's measured default
        self.bundled_model = export.manifest["model"]["source"].get("bundled_model")
        self.nova_policy, self.nova_note = resolve_policy_text("nova", self.bundled_model)

    @classmethod
    def from_dir(cls, path, backend: str = "onnxruntime", device: Union[str, torch.device] = "cpu",
                 threads: Optional[int] = None, verify_hashes: bool = True,
                 expect_sha256: Optional[str] = None) -> "Pipeline":
        """The export at path (checked by the loader: schema, files inside it, sizes and sha256s
        against its manifest; expect_sha256, the manifest's own sha256 from a source you trust,
        refuses any other manifest) on an activated backend."""
        export = open_export(path, verify_hashes=verify_hashes, expect_sha256=expect_sha256)
        export.codebook  # a bad codebook is refused before the backend loads every graph
        return cls(export, open_backend(backend, export, device=device, threads=threads))

    def close(self) -> None:
        self.backend.deactivate()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def max_batch(self) -> int:
        return self.spec.max_batch

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, labels: Union[Sequence[int], torch.Tensor], seed: Optional[int] = None, cfg: float = 1.5,
                 top_k: int = 0, top_p: float = 0.0, more_smooth: bool = False, draw: str = "official",
                 policy: Union[str, Policy] = "none", want_trace: bool = False,
                 seeds: Optional[Sequence[int]] = None) -> RuntimeResult:
        """seed: one random stream for the batch, in the official order (the official code's images).
        seeds: one int64 seed per image, each image drawing from its own stream, so that an image does
        not depend on the rest of its batch (up to NOVA's batch rule: kept counts are the batch's maximum).
        draw: "official" (the official draw: the PyTorch sampler's tokens) or "inverse-cdf" (the same
        distribution from one variate per token, cheaper; other tokens for the same seed)."""
        check_runtime_request(self.spec, labels, seed, top_k)
        params = SamplingParams(cfg=cfg, top_k=top_k, top_p=top_p, more_smooth=more_smooth, draw=draw)
        if isinstance(policy, str):
            policy = self.nova_policy if policy == "nova" else parse_policy(policy)
        check_policy_fits(policy, self.spec)
        B = len(labels)
        require(1 <= B <= self.max_batch, f"batch of {B} images: this export takes 1..{self.max_batch} "
                                          f"(re-export with --max-batch {B} for more)")
        rng = random_streams(seed, seeds, B, self.device)
        label_B = resolve_labels(self.spec.var.num_classes, B, labels, rng, self.device)
        bufs = self.buffers.take(B)
        try:
            return self._generate(bufs, label_B, rng, params, policy, want_trace)
        finally:
            self.buffers.give(bufs)

    def _generate(self, bufs: GenerationBuffers, label_B, rng, params: SamplingParams, policy: Policy,
                  want_trace: bool) -> RuntimeResult:
        clock = GraphClock(Timing(), self.device)
        executor = GraphExecutor(self.spec, self.backend, bufs, self.codebook_VC, clock)
        result = run_generation(executor, label_B, rng, params, policy, want_trace)
        return RuntimeResult(images=result.images, tokens=result.tokens, trace=result.trace, timing=clock.finish())
