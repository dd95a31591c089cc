"""Print the `fixed:` policy with the per-scale ratios NOVA's default config chooses on the bundled
reference model, mapped by position from the end onto a model with --scales scales (10 for d16).

    python tools/nova_fixed_ratios.py --scales 10 [--samples 20] [--cfg 1.5]

`nova-deploy bench --policies fixed:nova-ref` computes the same thing itself.
"""
import argparse
import json

from nova_deploy.bench.nova_ratios import nova_reference_ratios
from nova_deploy.sampling import SamplingParams


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", type=int, default=10, help="scales of the target model (d16: 10)")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cfg", type=float, default=1.5)
    ap.add_argument("--json", action="store_true", help="print the details as JSON")
    a = ap.parse_args()
    r = nova_reference_ratios(a.scales, samples=a.samples, seed=a.seed, params=SamplingParams(cfg=a.cfg))
    print(json.dumps(r.to_json(), indent=1) if a.json else r.fixed)


if __name__ == "__main__":
    main()
