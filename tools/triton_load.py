"""Load figures of the Triton-served model against calling Pipeline in process (docs/SERVING.md).

    python tools/triton_load.py EXPORT_DIR [--concurrency 1,4,16] [--requests 64] [--identity 256]
                                [--threads 2] [--json serving_load.json]

For dynamic batching on and off: writes a repository with `nova-deploy triton-repo`, starts the
nvidia-pytriton tritonserver on 127.0.0.1 (tritonserver environment as the tests prepare it), and
at each concurrency sends --requests one-image requests (policy none) from that many HTTP clients:
images/s and p50/p99 latency per request. In process: the same requests as Pipeline.generate calls
from that many threads of one Pipeline. Then, with dynamic batching on, the identity figure: how
many of --identity requests sent by 16 clients give the image of that request generated alone,
per policy (none, nova). Traffic goes to 127.0.0.1 only; every loop is bounded in count and time.
"""
import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nova_deploy.machine import cpu_name  # noqa: E402
from nova_deploy.runtime.pipeline import Pipeline  # noqa: E402
from nova_deploy.serving.config import ServingOptions  # noqa: E402
from nova_deploy.serving.local_server import LocalTritonServer, make_overlay, prepare_install, project_requirements  # noqa: E402
from nova_deploy.serving.repository import write_repository  # noqa: E402
from nova_deploy.serving.requests import images_uint8  # noqa: E402

MODEL = "nova"
TIMEOUT_S = 300


def rows(n):
    return [(i % 10, 10_000 + i) for i in range(n)]


def infer(client, class_id, seed, policy="none"):
    import tritonclient.http as th

    inputs = []
    for name, array, dtype in (("class_id", np.array([[class_id]], np.int32), "INT32"),
                               ("seed", np.array([[seed]], np.int64), "INT64"),
                               ("policy", np.array([[policy.encode()]], np.object_), "BYTES")):
        t = th.InferInput(name, list(array.shape), dtype)
        t.set_data_from_numpy(array)
        inputs.append(t)
    return client.infer(MODEL, inputs, outputs=[th.InferRequestedOutput("image")]).as_numpy("image")[0]


def timed(fn, jobs, concurrency):
    """images/s and latencies of fn(job) called for every job from `concurrency` threads."""
    latencies = []

    def one(job):
        t0 = time.perf_counter()
        fn(job)
        latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, jobs))
    wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(jobs), "images_per_s": len(jobs) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


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
    return {"images_per_execution": delta("inference_count") / executions,
            "queue_ms_per_request": delta("inference_stats", "queue", "ns") / 1e6 / delta("inference_stats", "queue", "count"),
            "compute_ms_per_execution": delta("inference_stats", "compute_infer", "ns") / 1e6 / executions}


def serve(install, export, work, dynamic, threads):
    repo = write_repository(export, work / f"repo_{'dyn' if dynamic else 'nodyn'}",
                            ServingOptions(name=MODEL, dynamic_batching=dynamic, threads=threads))
    overlay = work / "overlay"
    if not overlay.exists():
        make_overlay(install, REPO, overlay)
    return LocalTritonServer(install, repo, overlay, work / f"tritonserver_{'dyn' if dynamic else 'nodyn'}.log")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--identity", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import tritonclient.http as th

    levels = [int(c) for c in args.concurrency.split(",")]
    report = {"machine": {"cpu": cpu_name("unknown CPU"), "cores": os.cpu_count(),
                          "load_average_at_start": os.getloadavg()},
              "command": " ".join(["python", "tools/triton_load.py", *sys.argv[1:]]), "threads": args.threads,
              "rows": []}
    jobs = rows(args.requests)
    install = prepare_install(project_requirements(REPO))
    with Pipeline.from_dir(args.export, backend="onnxruntime", threads=args.threads) as pipe, \
            tempfile.TemporaryDirectory() as tmp:
        pipe.generate([0], seeds=[0])  # warm-up
        for c in levels:
            r = timed(lambda job: pipe.generate([job[0]], seeds=[job[1]]), jobs, c)
            report["rows"].append({"mode": "Pipeline in process", **r})
            print(report["rows"][-1], flush=True)
        for dynamic in (True, False):
            with serve(install, args.export, Path(tmp), dynamic, args.threads).start(timeout_s=TIMEOUT_S) as srv:
                local = threading.local()

                def client():  # one per thread: a client is not thread-safe
                    if not hasattr(local, "client"):
                        local.client = th.InferenceServerClient(srv.http_url, network_timeout=TIMEOUT_S)
                    return local.client

                infer(client(), 0, 0)  # warm-up
                for c in levels:
                    before = server_stats(client())
                    r = timed(lambda job: infer(client(), *job), jobs, c)
                    r.update(stats_delta(before, server_stats(client())))
                    report["rows"].append({"mode": f"Triton, dynamic batching {'on' if dynamic else 'off'}", **r})
                    print(report["rows"][-1], flush=True)
                if dynamic and args.identity:
                    report["identity"] = identity(pipe, client, args.identity)
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
