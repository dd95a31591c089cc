"""The VQVAE decoder, torch eager against each deployed decoder, side by side in one process.

    python tools/decoder_speed.py [--preset d16] [--batch 1,4] [--repeat 5] [--threads 2] [--bf16] [--json out.json]
    python tools/decoder_speed.py --engines DIR ...   # an existing export's decoder graph and model

The reference is `vae.fhat_to_img` in eager PyTorch, as the reference sampler runs it. The deployed
decoders are the runtime's: the onnxruntime backend's session of decoder.onnx (opened by
ort_session.open_session with the export's weights.bin shared, as the backend opens it) and the
torch backend's decoder module (torch_backend.deployed_module); --bf16 adds that module with the
backend's opt-in bf16 decoder. With --preset the models get random
weights and only the decoder graph is exported, into a temporary directory, the way
`nova-deploy export` writes it.

Every round runs each decoder once per batch size, in turn (after one warm-up call each), so load
from other processes falls on all of them alike. Reported per image: wall seconds (median and
min over rounds) and CPU seconds of this process (user + sys), the ratio eager / deployed on the
median wall time, and the largest difference and PSNR against the eager image. CPU time is the steadier figure
on a shared machine; run with OMP_WAIT_POLICY=PASSIVE so that torch's idle OpenMP workers do not
spin it up. The load average is printed before and after.
"""
import argparse
import copy
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.export import vocabulary as io
from nova_deploy.export.graphs import graph_module
from nova_deploy.export.model_check import configs_of
from nova_deploy.export.onnx_io import GraphWriter, dummy_inputs, export_graph, trace_sizes
from nova_deploy.export.shared_weights import SharedWeights
from nova_deploy.export.spec import build_spec
from nova_deploy.ort_session import open_session
from nova_deploy.runtime.backends.torch_backend import deployed_module


def export_decoder(var, vae, max_batch: int, out_dir: Path):
    """(spec, decoder GraphSpec, path of decoder.onnx) with the decoder graph written into out_dir."""
    var_cfg, vae_cfg = configs_of(var, vae)
    spec = build_spec(var_cfg, vae_cfg, max_batch=max_batch)
    g = spec.graph("decoder")
    model = export_graph(graph_module(g, spec, var, vae), g, dummy_inputs(g, trace_sizes(g), var_cfg.num_classes),
                         spec.opset)
    writer = GraphWriter(out_dir)
    try:
        writer.write(model, g.file)
    finally:
        writer.close()
    return spec, g, out_dir / g.file


class OnnxRuntimeDecoder:
    """decoder.onnx in a session opened as the onnxruntime backend opens it."""

    def __init__(self, path: Path, threads: int):
        self.weights = SharedWeights(path.parent / WEIGHTS_FILE)  # the session views it: kept as long
        self.session = open_session(path, threads=threads, weights=self.weights)

    def __call__(self, f_hat: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run([io.IMAGE], {io.F_HAT: f_hat.numpy()})[0])


def torch_backend_decoder(g, spec, var, vae, bf16: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    # the backend loads a model of its own and changes its layout in place: so does this copy
    module = deployed_module(g, spec, var, copy.deepcopy(vae), torch.device("cpu"), decoder_bf16=bf16)

    def run(f_hat: torch.Tensor) -> torch.Tensor:
        image = module.compute({io.F_HAT: f_hat})[io.IMAGE]
        return torch.empty(image.shape).copy_(image)  # the backend copies into the runtime's NCHW buffer
    return run


def time_side_by_side(decoders: Dict[str, Callable], f_hat: torch.Tensor, repeat: int) -> Dict[str, dict]:
    """Interleaved rounds; per decoder wall and CPU seconds per image and its largest difference from the first."""
    B = f_hat.shape[0]
    images = {name: run(f_hat) for name, run in decoders.items()}  # warm-up, and the images compared
    reference = images[next(iter(decoders))]
    wall: Dict[str, List[float]] = {n: [] for n in decoders}
    cpu: Dict[str, List[float]] = {n: [] for n in decoders}
    for _ in range(repeat):
        for name, run in decoders.items():
            c0, t0 = os.times(), time.perf_counter()
            run(f_hat)
            t1, c1 = time.perf_counter(), os.times()
            wall[name].append((t1 - t0) / B)
            cpu[name].append((c1.user - c0.user + c1.system - c0.system) / B)
    return {n: {"wall_median_s": statistics.median(wall[n]), "wall_min_s": min(wall[n]),
                "cpu_median_s": statistics.median(cpu[n]), "wall_s": wall[n], "cpu_s": cpu[n],
                "max_abs_diff": float((images[n] - reference).abs().max()),
                "psnr_db": psnr(images[n], reference)} for n in decoders}


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Of images in [-1, 1] (peak-to-peak 2); inf when equal."""
    mse = float(((image - reference) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(4 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--preset", default="d16", help="model preset, random weights (default d16)")
    src.add_argument("--engines", type=Path, help="an export directory: its decoder.onnx and its source model")
    ap.add_argument("--batch", default="1,4", help="comma-separated batch sizes (default 1,4)")
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads of torch and ONNX Runtime (default 2)")
    ap.add_argument("--bf16", action="store_true", help="also the torch backend's opt-in bf16 decoder")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="decoder_speed_") as tmp, torch.no_grad():
        if args.engines is not None:
            from nova_deploy.export.manifest import open_export
            from nova_deploy.runtime.backends.torch_backend import load_source_models

            export = open_export(args.engines)
            var, vae = load_source_models(export, torch.device("cpu"))
            spec, g = export.spec, export.spec.graph("decoder")
            path, what = export.file(g.file), f"export {args.engines}"
            if max(batches) > spec.max_batch:
                ap.error(f"--batch {max(batches)} is above the export's max batch {spec.max_batch}")
        else:
            from nova_deploy.model_source import resolve_models

            models = resolve_models(None, None, args.preset)
            var, vae = models.var, models.vae
            spec, g, path = export_decoder(var, vae, max(batches), Path(tmp))
            what = f"preset {args.preset}, random weights"
        decoders = {"torch eager (reference sampler)": lambda f: vae.fhat_to_img(f),
                    "onnxruntime backend": OnnxRuntimeDecoder(Path(path), args.threads),
                    "torch backend": torch_backend_decoder(g, spec, var, vae)}
        if args.bf16:
            decoders["torch backend, bf16 decoder"] = torch_backend_decoder(g, spec, var, vae, bf16=True)
        C, P = vae.Cvae, vae.quantize.v_patch_nums[-1]
        print(f"decoder of {what}: {vae.image_size}px from a {P}x{P} latent; {args.threads} threads, "
              f"{args.repeat} interleaved rounds; torch {torch.__version__}; load average before "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        report = {"model": what, "image_size": vae.image_size, "threads": args.threads, "repeat": args.repeat,
                  "load_before": os.getloadavg(), "batches": {}}
        for B in batches:
            f_hat = torch.randn(B, C, P, P)
            res = time_side_by_side(decoders, f_hat, args.repeat)
            eager = res["torch eager (reference sampler)"]["wall_median_s"]
            print(f"\nbatch {B}: seconds per image   wall median   wall min   CPU median   eager/this   max |diff|"
                  f"   PSNR dB")
            for name, r in res.items():
                print(f"  {name:32s} {r['wall_median_s']:9.3f} {r['wall_min_s']:10.3f} {r['cpu_median_s']:11.3f}"
                      f" {eager / r['wall_median_s']:11.2f}x {r['max_abs_diff']:11.2e} {r['psnr_db']:9.1f}")
            report["batches"][B] = res
        report["load_after"] = os.getloadavg()
        print(f"\nload average after {' '.join(f'{x:.2f}' for x in report['load_after'])}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
