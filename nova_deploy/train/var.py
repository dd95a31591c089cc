"""VAR training by teacher forcing on token pyramids pre-encoded with the trained VQVAE.

Encoding once (instead of every step) makes each VAR step cost only the transformer; with a
fixed training set the run is a function of the seed, which makes it reproducible and resumable.
"""
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm import tqdm

from nova_deploy.atomic_write import write_atomic
from nova_deploy.data import ShapesDataset
from nova_deploy.errors import InvalidArgument
from nova_deploy.models.build import build_var
from nova_deploy.models.presets import VARConfig
from nova_deploy.train.recipe import Attention
from nova_deploy.threads import torch_threads
from nova_deploy.train.loop import LossLog, cosine_lr, load_training_state, save_training_state

VAR_STATE_FILE = "var_train_state.pt"
SDPA_KERNELS = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION}


@contextmanager
def deterministic_algorithms(enabled: bool):
    """torch's deterministic kernels inside the block, the caller's setting restored after it."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


@torch.no_grad()
def encode_dataset(vae, out_path: Path, seed: int, n_images: int, batch: int = 64) -> Path:
    """Token pyramids (n, L) int16 and labels of n_images shapes; skipped if already complete."""
    if out_path.exists():
        return out_path
    data = ShapesDataset(seed=seed, length=n_images, size=vae.image_size)
    tokens, labels = [], []
    for start in tqdm(range(0, n_images, batch), desc="encode", mininterval=5):
        img, lab = data.batch(start, min(batch, n_images - start))
        tokens.append(torch.cat(vae.img_to_idxBl(img), dim=1).to(torch.int16))
        labels.append(lab)
    encoded = {"tokens": torch.cat(tokens), "labels": torch.cat(labels)}
    write_atomic(out_path, lambda tmp: torch.save(encoded, tmp))
    return out_path


def split_scales(tokens_NL: torch.Tensor, patch_nums) -> list:
    out, cur = [], 0
    for pn in patch_nums:
        out.append(tokens_NL[:, cur:cur + pn * pn].long())
        cur += pn * pn
    return out


def train_var(cfg: VARConfig, vae, tokens_path: Path, out_dir: Path, seed: int, steps: int, batch: int = 32,
              lr: float = 1.5e-3, weight_decay: float = 0.05, cond_drop_rate: float = 0.1,
              log_every: int = 10, ckpt_every: int = 100, compile_step: bool = False,
              threads_at_step=None, deterministic: bool = False, attention: Attention = "math",
              prefix_scales: Optional[int] = None, full_every: int = 1, bf16_autocast: bool = False):
    """compile_step: run the forward and backward through torch.compile (1.3x a step on these CPUs,
    after minutes of compiling; the saved weights keep the model's own keys).
    threads_at_step: step -> torch thread count, a function of the step alone so that a resumed run
    computes every step as the uninterrupted one did.
    deterministic: torch's deterministic kernels for the stage; without them the compiled backward
    sums the level embedding's gradient in a thread-dependent order and two runs differ in the
    last bits (they cost no measurable time a step here: tools/model_card_notes.md).
    attention: the scaled-dot-product kernel, "math" or "flash" (the cheaper one depends on the length).
    prefix_scales, full_every: with prefix_scales set, only every full_every-th step (steps
    full_every - 1, 2 full_every - 1, ...) trains the whole pyramid; the others train its first
    prefix_scales scales, which the block-causal mask makes exact and which cost a fraction of a full
    step: the coarse scales that decide the layout see more pyramids for the same time.
    bf16_autocast: the forward's matrix products and attention in bfloat16 (torch.autocast; weights,
    optimizer state and the loss stay float32), 1.4x a step at 680 tokens on CPUs with AVX512-BF16."""
    if prefix_scales is not None and not 1 <= prefix_scales <= len(cfg.patch_nums):
        raise InvalidArgument(f"prefix_scales must be in 1..{len(cfg.patch_nums)}, got {prefix_scales}")
    if full_every < 1:
        raise InvalidArgument(f"full_every must be >= 1, got {full_every}")
    with deterministic_algorithms(deterministic), torch_threads():
        return _train_var(cfg, vae, tokens_path, out_dir, seed, steps, batch, lr, weight_decay, cond_drop_rate,
                          log_every, ckpt_every, compile_step, threads_at_step, SDPA_KERNELS[attention],
                          prefix_scales, full_every, bf16_autocast)


def _train_var(cfg, vae, tokens_path, out_dir, seed, steps, batch, lr, weight_decay, cond_drop_rate,
               log_every, ckpt_every, compile_step, threads_at_step, sdpa_backend, prefix_scales, full_every,
               bf16_autocast):
    torch.manual_seed(seed)
    var = build_var(cfg, vae, cond_drop_rate=cond_drop_rate)
    var.init_weights(init_std=-1)
    var.train()
    forward = torch.compile(var) if compile_step else var
    decay = [p for n, p in var.named_parameters() if p.ndim >= 2 and "pos_" not in n]
    no_decay = [p for n, p in var.named_parameters() if not (p.ndim >= 2 and "pos_" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    ckpt, log = out_dir / VAR_STATE_FILE, LossLog(out_dir / "var_log.jsonl")
    step = load_training_state(ckpt, var, opt, steps) if ckpt.exists() else 0
    data = torch.load(tokens_path, weights_only=True)
    tokens, labels = data["tokens"], data["labels"]
    n = tokens.shape[0]
    order = torch.randperm(n * (steps * batch // n + 1), generator=torch.Generator().manual_seed(seed)) % n
    t0 = time.time()
    for step in tqdm(range(step, steps), initial=step, total=steps, desc="var", mininterval=5):
        if threads_at_step is not None and torch.get_num_threads() != (step_threads := threads_at_step(step)):
            torch.set_num_threads(step_threads)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, warmup=100)
        pick = order[step * batch:(step + 1) * batch]
        gt_ms = split_scales(tokens[pick], cfg.patch_nums)
        x_in = vae.quantize.idxBl_to_var_input(gt_ms)
        target_BL = torch.cat(gt_ms, dim=1)
        full = prefix_scales is None or step % full_every == full_every - 1
        if not full:
            L = var.begin_ends[prefix_scales - 1][1]
            x_in, target_BL = x_in[:, :L - var.first_l], target_BL[:, :L]
        with sdpa_kernel(sdpa_backend):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_autocast):
                logits_BLV = forward(labels[pick], x_in)
            loss = F.cross_entropy(logits_BLV.float().reshape(-1, logits_BLV.shape[-1]), target_BL.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(var.parameters(), 2.0)
        opt.step()
        if step % log_every == 0:
            with torch.no_grad():
                last = var.begin_ends[-1 if full else prefix_scales - 1]
                acc_last = (logits_BLV[:, last[0]:last[1]].argmax(-1) == target_BL[:, last[0]:last[1]]).float().mean()
            log.write(step=step, loss=round(loss.item(), 4), acc_last_scale=round(acc_last.item(), 4),
                      scales=len(cfg.patch_nums) if full else prefix_scales,
                      lr=round(opt.param_groups[0]["lr"], 7), threads=torch.get_num_threads(),
                      elapsed_s=round(time.time() - t0, 1))
        if (step + 1) % ckpt_every == 0 or step + 1 == steps:
            save_training_state(ckpt, var, opt, step + 1, steps)
    return var.eval()
