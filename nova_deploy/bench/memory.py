"""Peak RSS of one configuration, measured in a fresh subprocess.

Peak RSS (VmHWM) is per process and never goes down, so in the benchmark process it would
report the largest configuration for all that run after it. Each probe therefore runs
`python -m nova_deploy.bench.memory` in its own process: import the libraries, record RSS
(`baseline`), open and prepare the runner (torch-compile compiles, and its peak includes that),
run one warm-up and one generation, then report the process's peak RSS and the growth over the
baseline (what the configuration itself adds). On CUDA it also
reports torch's peak allocated device memory (the torch backend and reference sampler only: other
libraries allocate outside torch's allocator).
"""
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional

from nova_deploy.errors import NovaDeployError


@dataclass
class Memory:
    peak_rss_mb: float  # whole process, ru_maxrss
    baseline_rss_mb: float  # after imports, before the runner was opened
    growth_mb: float  # peak - baseline: what the configuration adds
    device_peak_mb: Optional[float] = None

    def to_json(self) -> dict:
        return {"peak_rss_mb": self.peak_rss_mb, "baseline_rss_mb": self.baseline_rss_mb, "growth_mb": self.growth_mb,
                "device_peak_mb": self.device_peak_mb, "method": "fresh subprocess per configuration"}


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def peak_rss_mb() -> float:
    """VmHWM, the peak RSS of this process's own address space. Not ru_maxrss: Linux carries the
    parent's peak over fork/vfork + exec into the child's ru_maxrss, so a probe started from a large
    benchmark process would report the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise NovaDeployError("no VmHWM in /proc/self/status: peak RSS probes need Linux")


def probe(export_dir, runner: str, policy_text: str, batch: int, device: str, threads: Optional[int],
          seed: int, params, timeout_s: float = 900) -> Memory:
    """Run one configuration in a subprocess and read its memory figures."""
    args = [sys.executable, "-m", "nova_deploy.bench.memory", str(export_dir), runner, policy_text, str(batch),
            device, str(threads or 0), str(seed), str(params.cfg), str(params.top_k), str(params.top_p), params.draw]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise NovaDeployError(f"memory probe of {runner} {policy_text} b{batch} took over {timeout_s:.0f} s") from None
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise NovaDeployError(f"memory probe of {runner} {policy_text} b{batch} failed: {last}")
    return Memory(**json.loads(lines[-1]))


def _main(argv) -> None:
    export_dir, runner, policy_text, batch, device, threads, seed, cfg, top_k, top_p, draw = argv
    import torch

    from nova_deploy.bench.runner_by_name import open_runner
    from nova_deploy.export.manifest import open_export
    from nova_deploy.nova.policy import parse_policy
    from nova_deploy.sampling import SamplingParams

    threads = int(threads) or None
    if threads:
        torch.set_num_threads(threads)
    export = open_export(export_dir, verify_hashes=False)  # the parent process verified them
    params = SamplingParams(cfg=float(cfg), top_k=int(top_k), top_p=float(top_p), draw=draw)
    policy = parse_policy(policy_text)
    baseline = current_rss_mb()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    r = open_runner(runner, export, device, threads)
    r.prepare([(int(batch), policy)], int(seed), params)  # torch-compile compiles here, inside the peak
    for _ in range(2):
        r.run(int(batch), policy, int(seed), params)
    peak = peak_rss_mb()
    dev = torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None
    print(json.dumps({"peak_rss_mb": peak, "baseline_rss_mb": baseline, "growth_mb": peak - baseline,
                      "device_peak_mb": dev}))


if __name__ == "__main__":
    _main(sys.argv[1:])
