"""How far a low-precision export's generations stray from the fp32 PyTorch reference sampler.

    python tools/precision_agreement.py EXPORT_DIR [--seeds 8] [--batch 8] [--policies none,nova]

The export's model (its manifest names the checkpoints, or the bundled model) generates on the
PyTorch reference sampler in fp32 and on the export through ONNX Runtime (CPU), with the same
seeds, labels (classes cycled) and cfg 1.5. Prints per policy: token agreement over every scale,
the share of images whose tokens all agree, the largest pixel difference, and the lowest PSNR of
the images whose tokens do not all agree (those are identical otherwise: f_hat and the decoder run
in fp32 at every precision).
"""
import argparse
import math

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--policies", default="none,nova")
    a = ap.parse_args()

    from nova_deploy.model_source import resolve_models
    from nova_deploy.nova.policy import parse_policy
    from nova_deploy.runtime.pipeline import Pipeline
    from nova_deploy.sampler import generate
    from nova_deploy.sampling import SamplingParams

    print("| policy | token agreement | images with every token equal | image max abs diff | PSNR of the others (min) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with Pipeline.from_dir(a.export_dir, backend="onnxruntime") as pipe:
        source = pipe.export.manifest["model"].get("source") or {}
        var = resolve_models(source.get("var"), source.get("vae"), None).var
        for text in a.policies.split(","):
            equal_tokens = all_tokens = equal_images = 0
            max_diff, psnrs = 0.0, []
            for seed in range(a.seeds):
                labels = [(seed * a.batch + i) % var.num_classes for i in range(a.batch)]
                got = pipe.generate(labels, seed=seed, cfg=1.5, policy=text)
                want = generate(var, a.batch, torch.tensor(labels), g_seed=seed, params=SamplingParams(cfg=1.5),
                                policy=parse_policy(text))
                same_B = torch.ones(a.batch, dtype=torch.bool)
                for g, w in zip(got.tokens, want.idx_Bl):
                    eq = g.cpu() == w
                    equal_tokens, all_tokens = equal_tokens + int(eq.sum()), all_tokens + eq.numel()
                    same_B &= eq.all(dim=1)
                equal_images += int(same_B.sum())
                diff = (got.images.cpu() - want.images).abs()
                max_diff = max(max_diff, float(diff.max()))
                for b in (~same_B).nonzero().flatten().tolist():
                    mse = float((diff[b] ** 2).mean())
                    psnrs.append(10 * math.log10(1 / mse) if mse > 0 else math.inf)
            n = a.seeds * a.batch
            print(f"| {text} | {100 * equal_tokens / all_tokens:.1f} % | {100 * equal_images / n:.1f} % | "
                  f"{max_diff:.2f} | {f'{min(psnrs):.1f} dB' if psnrs else '-'} |")


if __name__ == "__main__":
    main()
