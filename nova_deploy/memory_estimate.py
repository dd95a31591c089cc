"""What a batch of generation holds in memory at once, estimated before anything is allocated, so
that a batch the machine cannot hold is refused in one line instead of failing minutes later
(or being killed).

The estimate counts only the largest tensors, so it is below what a run really takes: a batch is
refused only when even that much is not available.
"""
import os
from pathlib import Path
from typing import Optional, Sequence

from nova_deploy.errors import InvalidArgument

FP32 = 4


def generation_bytes(batch: int, depth: int, width: int, patch_nums: Sequence[int], vocab_size: int,
                     decoder_ch: int, ch_mult: Sequence[int], mlp_ratio: float = 4.0) -> int:
    """Bytes of the largest tensors that live at once while `batch` images are generated in fp32:
    the K/V cache of every scale for 2*batch rows (classifier-free guidance), the last scale's
    hidden states, MLP activations and logits (with their softmax), and the decoder's largest
    feature map (three alive: input, output, residual)."""
    rows = 2 * batch
    total_len, last_len = sum(p * p for p in patch_nums), patch_nums[-1] ** 2
    kv_cache = depth * 2 * rows * total_len * width * FP32
    activations = rows * last_len * width * (2 + mlp_ratio) * FP32
    logits = 2 * rows * last_len * vocab_size * FP32
    side = patch_nums[-1] * 2 ** (len(ch_mult) - 1)
    decoder = 3 * batch * max(decoder_ch * m * (side // 2 ** i) ** 2 for i, m in enumerate(ch_mult)) * FP32
    return kv_cache + activations + logits + decoder


def available_bytes() -> Optional[int]:
    """Memory this process may still take: MemAvailable, capped by a cgroup (container) limit;
    None where neither can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(found)


def gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def require_memory(need: int, what: str, fix: str) -> None:
    """InvalidArgument when `need` bytes are more than this machine has available."""
    have = available_bytes()
    if have is not None and need > have:
        raise InvalidArgument(f"{what} needs at least {gb(need)} of memory, more than the {gb(have)} available "
                              f"here; {fix}")
