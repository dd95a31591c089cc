"""Load figures of the Triton-served model against calling Pipeline in process (docs/SERVING.md).

    python tools/triton_load.py EXPORT_DIR [--concurrency 1,4,16] [--requests 64] [--rounds 4]
                                [--identity 256] [--threads 2] [--json serving_load.json]

Two servers (the nvidia-pytriton tritonserver on 127.0.0.1, environment as the tests prepare it)
serve repositories written by `nova-deploy triton-repo`, with dynamic batching on and off. At each
concurrency, --requests one-image requests (policy none) go from that many HTTP clients to each
server, and as Pipeline.generate calls from that many threads of one Pipeline in this process,
interleaved in --rounds rounds so that a change in the machine's load falls on every mode alike:
images/s, p50/p99 latency per request, and from Triton's statistics the images per execution,
queue time per request and compute time per execution. Then, with dynamic batching on, the
identity figure: how many of --identity requests sent by 16 clients give the image of that
request generated alone, per policy (none, nova). Traffic goes to 127.0.0.1 only; every loop is bounded in count and time.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nova_deploy.machine import cpu_name  # noqa: E402
from nova_deploy.runtime.pipeline import Pipeline  # noqa: E402
from nova_deploy.serving.config import ServingOptions  # noqa: E402
from nova_deploy.serving.local_server import (LocalTritonServer, http_client_per_thread, make_overlay,  # noqa: E402
                                             prepare_install, project_requirements)
from nova_deploy.serving.repository import write_repository  # noqa: E402
from nova_deploy.serving.requests import images_uint8  # noqa: E402

MODEL = "nova"
TIMEOUT_S = 300


def rows(n):
    return [(i % 10, 10_000 + i) for i in range(n)]


def infer(client, class_id, seed, policy="none", images=1):
    """One request of `images` rows (class_id, seed + row); the first row's image."""
    import tritonclient.http as th

    inputs = []
    for name, array, dtype in (("class_id", np.full((images, 1), class_id, np.int32), "INT32"),
                               ("seed", np.arange(seed, seed + images, dtype=np.int64).reshape(images, 1), "INT64"),
                               ("policy", np.full((images, 1), policy.encode(), np.object_), "BYTES")):
        t = th.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        inputs.append(t)
    return client.infer(MODEL, inputs, outputs=[th.InferRequestedOutput("image")]).as_numpy("image")[0]


def run(fn, jobs, concurrency):
    """(wall seconds, latencies) of fn(job) called for every job from `concurrency` threads."""
    latencies = []

    def one(job):
        t0 = time.perf_counter()
        fn(job)
        latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, jobs))
    return time.perf_counter() - t0, latencies


def server_stats(client):
    return client.get_inference_statistics(MODEL)["model_stats"][0]


def stats_delta(before, after):
    """From Triton's statistics: images per execution, queue time per request, compute per execution."""
    def delta(*keys):
        a, b = after, before
        for k in keys:
            a, b = a[k], b[k]
        return float(a) - float(b)

    executions = delta("execution_count")
    return {"images": delta("inference_count"), "executions": executions,
            "queue_ns": delta("inference_stats", "queue", "ns"), "compute_ns": delta("inference_stats", "compute_infer", "ns")}


def serve(install, export, work, dynamic, threads):
    repo = write_repository(export, work / f"repo_{'dyn' if dynamic else 'nodyn'}",
                            ServingOptions(name=MODEL, dynamic_batching=dynamic, threads=threads))
    overlay = work / "overlay"
    if not overlay.exists():
        make_overlay(install, REPO, overlay)
    return LocalTritonServer(install, repo, overlay, work / f"tritonserver_{'dyn' if dynamic else 'nodyn'}.log")


def measure(modes, jobs, concurrency, rounds):
    """Every mode on the same jobs, in `rounds` interleaved rounds (so that a change in the machine's
    load falls on all modes alike): images/s, p50/p99 latency, and Triton's own figures."""
    acc = {name: {"wall": 0.0, "latencies": [], "stats": []} for name in modes}
    per_round = max(1, len(jobs) // rounds)
    for r in range(rounds):
        chunk = jobs[r * per_round:(r + 1) * per_round]
        for name, (fn, client) in modes.items():
            before = server_stats(client()) if client else None
            wall, latencies = run(fn, chunk, concurrency)
            acc[name]["wall"] += wall
            acc[name]["latencies"] += latencies
            if client:
                acc[name]["stats"].append(stats_delta(before, server_stats(client())))
    rows = []
    for name, a in acc.items():
        ms = np.array(a["latencies"]) * 1000
        row = {"mode": name, "concurrency": concurrency, "requests": len(ms), "images_per_s": len(ms) / a["wall"],
               "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}
        if a["stats"]:
            total = {k: sum(d[k] for d in a["stats"]) for k in a["stats"][0]}
            row.update(images_per_execution=total["images"] / total["executions"],
                       queue_ms_per_request=total["queue_ns"] / 1e6 / total["images"],
                       compute_ms_per_execution=total["compute_ns"] / 1e6 / total["executions"])
        rows.append(row)
        print(row, flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--requests", type=int, default=64, help="per mode and concurrency")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds the requests are split into")
    ap.add_argument("--identity", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    levels = [int(c) for c in args.concurrency.split(",")]
    report = {"machine": {"cpu": cpu_name("unknown CPU"), "cores": os.cpu_count(),
                          "load_average_at_start": os.getloadavg()},
              "command": " ".join(["python", "tools/triton_load.py", *sys.argv[1:]]), "threads": args.threads,
              "rows": []}
    jobs = rows(args.requests)
    install = prepare_install(project_requirements(REPO))
    with Pipeline.from_dir(args.export, backend="onnxruntime", threads=args.threads) as pipe, \
            tempfile.TemporaryDirectory() as tmp, \
            serve(install, args.export, Path(tmp), True, args.threads).start(timeout_s=TIMEOUT_S) as on, \
            serve(install, args.export, Path(tmp), False, args.threads).start(timeout_s=TIMEOUT_S) as off:
        on_client, off_client = (http_client_per_thread(on.http_url, TIMEOUT_S),
                                 http_client_per_thread(off.http_url, TIMEOUT_S))
        modes = {"Pipeline in process": (lambda job: pipe.generate([job[0]], seeds=[job[1]]), None),
                 "Triton, dynamic batching on": (lambda job: infer(on_client(), *job), on_client),
                 "Triton, dynamic batching off": (lambda job: infer(off_client(), *job), off_client)}
        # warm-up at every batch size: ONNX Runtime's first run at a new shape, and the Pipeline's
        # first call at a new batch size (buffers), cost up to twice a warm call
        for b in range(1, pipe.max_batch + 1):
            pipe.generate([0] * b, seeds=list(range(b)))
            infer(on_client(), 0, 0, images=b)
            infer(off_client(), 0, 0, images=b)
        for c in levels:
            report["rows"] += measure(modes, jobs, c, args.rounds)
        if args.identity:
            report["identity"] = identity(pipe, on_client, args.identity)
        report["machine"]["load_average_at_end"] = os.getloadavg()
    print_markdown(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def identity(pipe, client, n):
    """How many of n one-image requests from 16 clients, batched by Triton, give the image alone."""
    out = {}
    for policy in ("none", "nova"):
        jobs = rows(n)
        alone = [images_uint8(pipe.generate([c], seeds=[s], policy=policy).images)[0] for c, s in jobs]
        with ThreadPoolExecutor(max_workers=16) as pool:
            served = list(pool.map(lambda i: infer(client(), *jobs[i], policy=policy), range(n)))
        out[policy] = int(sum(np.array_equal(a, b) for a, b in zip(alone, served)))
        print(f"identity, policy {policy}: {out[policy]}/{n}", flush=True)
    return {"requests": n, "identical": out}


def print_markdown(report):
    m = report["machine"]
    print(f"\n{m['cpu']}, {m['cores']} cores; load average {m['load_average_at_start'][0]:.2f} at start, "
          f"{m['load_average_at_end'][0]:.2f} at end; {report['threads']} threads per Pipeline\n")
    print("| mode | concurrency | images/s | p50 ms | p99 ms | images per execution | queue ms per request | "
          "compute ms per execution |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in report["rows"]:
        served = (f"{r['images_per_execution']:.1f} | {r['queue_ms_per_request']:.0f} | {r['compute_ms_per_execution']:.0f}"
                  if "images_per_execution" in r else "- | - | -")
        print(f"| {r['mode']} | {r['concurrency']} | {r['images_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
              f"{served} |")
    if "identity" in report:
        i = report["identity"]
        print("\n" + ", ".join(f"policy {p}: {k}/{i['requests']} identical" for p, k in i["identical"].items()))


if __name__ == "__main__":
    main()
