"""An export on a runtime backend as an image source for `evaluate` (eval.sources.ImageSource):
the quality of a precision or backend is measured on what it generates, beside the fp32 sampler."""
import torch

from nova_deploy.eval.sources import Generated
from nova_deploy.nova.policy import Policy
from nova_deploy.runtime.pipeline import Pipeline
from nova_deploy.sampling import SamplingParams


class PipelineSource:
    def __init__(self, pipe: Pipeline):
        self.pipe = pipe
        self.max_batch = pipe.max_batch
        self.name = f"export {pipe.export.path} ({pipe.spec.precision}) on {pipe.backend.label}"

    def generate(self, labels: torch.Tensor, seed: int, params: SamplingParams, policy: Policy) -> Generated:
        r = self.pipe.generate(labels.tolist(), seed=seed, cfg=params.cfg, top_k=params.top_k, top_p=params.top_p,
                               more_smooth=params.more_smooth, draw=params.draw, policy=policy, want_trace=True)
        return Generated(images=r.images.cpu(), tokens=[t.cpu() for t in r.tokens], trace=r.trace)
