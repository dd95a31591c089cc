"""The bundled models' training recipes: one place for `train_reference` and `nova-deploy train`.

One recipe per bundled model, each sized to its time budget on a 2-core CPU (the model cards name the
machine it was timed on; the probes behind each number are in tools/model_card_notes.md). Every
recipe runs the same stages: joint VQVAE, the training images encoded once into token pyramids, the
decoder refinement beside the encoding and the first VAR steps (one thread each), then the VAR on
every thread from `var_all_threads_from` on.
"""
from dataclasses import dataclass
from typing import Dict, Literal, Optional

from nova_deploy.errors import InvalidArgument

Attention = Literal["math", "flash"]


@dataclass(frozen=True)
class Recipe:
    preset: str
    vqvae_steps: int
    var_steps: int
    var_lr: float
    var_batch: int
    # the VAR step from which it runs on all threads: sized so that the decoder refinement beside it
    # has ended by then; fixed (not "when the decoder ends") so that every step's thread count, and
    # with it the model, is the same in every run
    var_all_threads_from: int
    var_compile: bool
    # the scaled-dot-product kernel of the VAR's training step, the cheaper one at the model's length
    var_attention: Attention
    encode_images: int
    decoder_steps: int
    decoder_lr: float
    # deterministic kernels make the VAR stage reproduce bit for bit, at no measurable cost a step
    # (0.295 s against 0.293 s, compiled, 155 tokens)
    var_deterministic: bool = True
    threads: int = 2
    # with var_prefix_scales set, only every var_full_every-th VAR step trains the whole pyramid and
    # the others its first var_prefix_scales scales (train_var)
    var_prefix_scales: Optional[int] = None
    var_full_every: int = 1
    # the VAR's forward under bfloat16 autocast (train_var)
    var_bf16_autocast: bool = False


RECIPES: Dict[str, Recipe] = {
    # 100 minutes: 8000 compiled steps of 32 pyramids see 40000 pyramids 6.4 times; at equal wall time
    # a probe reached a lower held-out loss with LR 1.5e-3 than with 6e-4; the decoder refinement's
    # 6000 steps at 1e-3 take the reconstructions' FID_feat to 2.56; the math attention kernel is
    # 7-15 % cheaper a step than the flash one at 155 tokens
    "nova-ref": Recipe(preset="nova-ref", vqvae_steps=5000, var_steps=8000, var_lr=1.5e-3, var_batch=32,
                       var_all_threads_from=2100, var_compile=True, var_attention="math",
                       encode_images=40000, decoder_steps=6000, decoder_lr=1e-3),
    # budget 150 minutes at 680 tokens a pyramid. A full VAR step of 32 costs about 3.2 s on two threads
    # over a long run under bf16 autocast, a step on the first 7 scales (155 tokens) about 0.5 s.
    # With the first 7 scales forced from real pyramids the model's samples are all recognised; its
    # misses come from those scales, so four prefix steps to one full one give them the most
    # pyramids the budget allows (about 1.0 s a step). Neither torch.compile nor the math kernel was
    # cheaper at 680 tokens. The joint VQVAE step costs 0.31 s, a decoder refinement step 0.42 s on
    # one thread (2500 of them last about the VAR's first 400 one-thread steps). The card's notes
    # give the probes and each run
    "nova-ref-16": Recipe(preset="nova-ref-16", vqvae_steps=3500, var_steps=5600, var_lr=1.5e-3, var_batch=32,
                          var_all_threads_from=400, var_compile=False, var_attention="flash",
                          encode_images=30000, decoder_steps=2500, decoder_lr=1e-3,
                          var_prefix_scales=7, var_full_every=5, var_bf16_autocast=True),
}
DEFAULT_MODEL = "nova-ref"


def get_recipe(model: str) -> Recipe:
    if model not in RECIPES:
        raise InvalidArgument(f"unknown model {model!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[model]
