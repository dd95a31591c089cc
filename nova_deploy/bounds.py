"""The valid range of each value a user gives, declared once: the CLI options (cli/options.py) and
the Python API (request_checks.py) check against these, each failure one line naming the value
and the range."""
import os
import re
from typing import Iterable, Optional

from nova_deploy.errors import InvalidArgument

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
SEED_RANGE = (0, INT64_MAX)  # torch.Generator.manual_seed takes an int64; negative seeds wrap around
THREADS_PER_CORE = 4  # beyond a few threads per core only contention grows (and each thread's stack)
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def max_threads() -> int:
    return cores() * THREADS_PER_CORE


def check_int(value, low: int, high: int, what: str, why: str = "") -> int:
    """value as an int in low..high; InvalidArgument naming `what`, the range and `why` otherwise."""
    valid = f"valid: {low}..{high}" + (f"; {why}" if why else "")
    if isinstance(value, bool) or not hasattr(value, "__index__"):  # int, numpy and 0-d torch integers
        raise InvalidArgument(f"{what} must be an integer, got {value!r} ({valid})")
    value = value.__index__()
    if value < low:
        raise InvalidArgument(f"{what} must be >= {low}, got {value} ({valid})")
    if value > high:
        raise InvalidArgument(f"{what} must be <= {high}, got {value} ({valid})")
    return value


def check_threads(threads: Optional[int], what: str = "threads") -> Optional[int]:
    """None (all cores) or 1..(cores x 4)."""
    if threads is None:
        return None
    return check_int(threads, 1, max_threads(), what, f"{cores()} cores here, at most {THREADS_PER_CORE} threads each")


def check_seed(seed: Optional[int], what: str = "seed") -> Optional[int]:
    if seed is None:
        return None
    return check_int(seed, *SEED_RANGE, what, "a 64-bit generator seed")


def check_top_k(top_k: int, vocab_size: int, what: str = "top_k") -> int:
    """0 (no filter) or 1..vocabulary size."""
    return check_int(top_k, 0, vocab_size, what, f"0: no filter; at most the vocabulary, {vocab_size} tokens")


def check_class_ids(labels: Iterable, num_classes: int, what: str = "class id") -> None:
    """Plain integers 0..num_classes (num_classes: the null class), checked before any tensor is
    made from them (torch overflows on ids beyond int64 with a traceback)."""
    for label in labels:
        if isinstance(label, bool) or not hasattr(label, "__index__") or not 0 <= label.__index__() <= num_classes:
            raise InvalidArgument(f"{what} [{label!r}] out of range: valid are 0..{num_classes - 1} "
                                  f"(or {num_classes}, the null class)")


def parse_device(text: str, what: str = "device") -> str:
    """'cpu', 'cuda' or 'cuda:N', as given; InvalidArgument listing the forms otherwise."""
    text = str(text).strip()
    if not DEVICE_PATTERN.fullmatch(text):
        raise InvalidArgument(f"{what} {text!r} is not a device; valid: cpu, cuda, cuda:N (N: the GPU index)")
    return text
