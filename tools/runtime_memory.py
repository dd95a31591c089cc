"""Peak RSS of the runtime against the bytes of the weights, one fresh process per configuration.

    python tools/runtime_memory.py EXPORT_DIR [--batch 8] [--threads 1]

For each of (pre-packing off, arena on) [the default], (pre-packing on, arena on), (pre-packing off,
arena off) x (policy none/nova) a child process opens the ONNX Runtime backend,
runs one warm-up and one measured generate() and reports its peak RSS: after import (torch,
onnxruntime), after loading the sessions, and after generating. Peak RSS is per process and only
grows, hence one process per configuration. Prints a Markdown table and writes JSON next to it.
"""
import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

from nova_deploy.atomic_write import write_json_atomic


def peak_rss_mb() -> float:
    """VmHWM of this process: Linux carries ru_maxrss across fork+exec, so a child would report its
    parent's peak if that were higher."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(export_dir: str, prepack: bool, arena: bool, policy: str, batch: int, threads: int) -> dict:
    import torch

    from nova_deploy.export.manifest import open_export
    from nova_deploy.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from nova_deploy.runtime.pipeline import Pipeline

    torch.set_num_threads(threads)
    peak = peak_rss_mb
    imported = peak()
    export = open_export(export_dir)
    backend = OnnxRuntimeBackend(export, "cpu", threads, share_prepacked=not prepack, memory_arena=arena)
    backend.activate()
    pipe = Pipeline(export, backend)
    loaded = peak()
    labels = [i % export.spec.var.num_classes for i in range(batch)]
    pipe.generate(labels, seed=0, policy=policy)
    r = pipe.generate(labels, seed=1, policy=policy)
    return {"prepacking": prepack, "memory_arena": arena, "policy": policy, "batch": batch, "rss_after_import_mb": imported,
            "rss_after_load_mb": loaded, "peak_rss_mb": peak(), "seconds": r.timing.total_s,
            "weights_bin_mb": export.manifest["weights"]["bytes_on_disk"] / 1e6,
            "raw_weights_mb": export.manifest["weights"]["raw_weight_bytes"] / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", nargs=3, metavar=("PREPACK", "ARENA", "POLICY"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.export_dir, a.child[0] == "1", a.child[1] == "1", a.child[2], a.batch, a.threads)))
        return
    rows = []
    for prepack, arena in (("0", "1"), ("1", "1"), ("0", "0")):
        for policy in ("none", "nova"):
            out = subprocess.run([sys.executable, __file__, a.export_dir, "--batch", str(a.batch), "--threads",
                                  str(a.threads), "--child", prepack, arena, policy], capture_output=True, text=True,
                                 check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| pre-packing | arena | policy | batch | RSS after import | after loading | peak | peak - import | s/call |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {'on' if r['prepacking'] else 'off (shared)'} | {'on' if r['memory_arena'] else 'off'} | "
              f"{r['policy']} | {r['batch']} | "
              f"{r['rss_after_import_mb']:.0f} MB | {r['rss_after_load_mb']:.0f} MB | {r['peak_rss_mb']:.0f} MB | "
              f"{r['peak_rss_mb'] - r['rss_after_import_mb']:.0f} MB | {r['seconds']:.3f} |")
    print(f"\nweights.bin {rows[0]['weights_bin_mb']:.1f} MB (raw weights {rows[0]['raw_weights_mb']:.1f} MB)")
    path = Path(a.export_dir).name + "_runtime_memory.json"
    write_json_atomic(path, rows)


if __name__ == "__main__":
    main()
