"""Graph timing: host clock on CPU; on a GPU, CUDA events read after one synchronisation, so a
graph's time is its GPU work and not the time to queue it."""
import time

import pytest
import torch

from nova_deploy.runtime.timing import GraphClock, Timing


def test_cpu_clock_counts_the_call_and_the_rest_is_outside():
    clock = GraphClock(Timing(), torch.device("cpu"))
    started = clock.start()
    time.sleep(0.02)
    clock.stop("scale_00", started)
    time.sleep(0.01)
    timing = clock.finish()
    assert 0.02 <= timing.per_graph_s["scale_00"] == timing.backend_s < timing.total_s
    assert timing.outside_backend_s >= 0.01


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the event path cannot run here")
def test_cuda_clock_measures_gpu_work_not_its_enqueue():
    a = torch.randn(4096, 4096, device="cuda")
    torch.cuda.synchronize()
    clock = GraphClock(Timing(), torch.device("cuda"))
    started = clock.start()
    t0 = time.perf_counter()
    for _ in range(20):
        a = a @ a / 64
    enqueue_s = time.perf_counter() - t0
    clock.stop("scale_00", started)
    timing = clock.finish()
    assert timing.per_graph_s["scale_00"] > enqueue_s  # the kernels, not the launches
    assert timing.backend_s <= timing.total_s
