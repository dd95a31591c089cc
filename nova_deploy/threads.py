"""torch's intra-op thread count is one setting for the whole process: library code that changes it
gives the caller's count back, so a command, a test or an embedding program keeps what it chose."""
from contextlib import contextmanager
from typing import Iterator, Optional

import torch


@contextmanager
def torch_threads(threads: Optional[int] = None) -> Iterator[None]:
    """The block runs on `threads` threads (None: on the current count); the count from before the
    block is restored after it, also where the block changed it again itself."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
