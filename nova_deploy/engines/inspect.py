"""`nova-deploy inspect PLAN|DIR`: what a plan is, for what, and whether it is still current.

Everything comes from the sidecar and the plan's bytes, which needs no GPU: cache key (and whether
it still hashes its fields), library, target, profile, network layers by type and precision, plan
size. The fused engine's layers and its device memory need the plan deserialized, which TensorRT
does only on a GPU; with one (and the library) they are added, without one that is said in one line.
"""
from pathlib import Path
from typing import List

from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.engines.library import load_library
from nova_deploy.engines.store import ENGINES_SUBDIR, PLAN_SUFFIX, plan_problem, read_sidecar
from nova_deploy.engines.targets import current_capability
from nova_deploy.errors import InvalidArgument


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def inspect_path(path) -> List[str]:
    path = Path(path)
    if path.is_file() and path.suffix == PLAN_SUFFIX:
        return inspect_plan(path)
    if path.is_dir():
        return inspect_dir(path)
    raise InvalidArgument(f"{path}: neither a {PLAN_SUFFIX} file nor a directory (give a plan, an engines "
                          f"directory or an export directory)")


def inspect_plan(plan: Path) -> List[str]:
    sidecar = read_sidecar(plan)
    problem = plan_problem(plan, sidecar)
    if sidecar is None:
        return [f"{plan}: {problem}; rebuild with `nova-deploy build-engines`"]
    missing = sidecar_gaps(sidecar)
    if missing:
        return [f"{plan}: NOT USABLE: its sidecar lacks {', '.join(missing)}; rebuild with `nova-deploy build-engines`"]
    f = sidecar["fields"]
    lines = [f"{plan}: graph {sidecar['graph']}, {_mb(sidecar['plan_bytes'])}, built in {sidecar['build_seconds']} s",
             f"  cache key {sidecar['key'][:16]}  ({'intact' if problem is None else 'NOT USABLE: ' + problem})",
             f"  library {f['library']} {f['library_version']}, target {f['target']}, options {f['options']}",
             f"  onnx sha256 {f['onnx_sha256'][:16]}, weights.bin sha256 {f['weights_sha256'][:16]}"]
    lines.append("  profile (min / opt / max):")
    for name, r in sidecar["profile"].items():
        lines.append(f"    {name:16s} {r['min']} / {r['opt']} / {r['max']}")
    net = sidecar["network"]
    lines.append(f"  network as parsed: {net['layers']} layers; output precisions {net['by_output_dtype']}")
    lines.append("  layer types: " + ", ".join(f"{k} {v}" for k, v in net["by_type"].items()))
    lines += _engine_lines(plan, f["library"])
    return lines


SIDECAR_SHOWN = {"graph": str, "plan_bytes": int, "build_seconds": (int, float), "key": str, "fields": dict,
                 "profile": dict, "network": dict}
FIELDS_SHOWN = ("library", "library_version", "target", "options", "onnx_sha256", "weights_sha256")
NETWORK_SHOWN = ("layers", "by_output_dtype", "by_type")


def sidecar_gaps(sidecar: dict) -> List[str]:
    """What inspect_plan shows that the sidecar does not hold (or holds as the wrong type)."""
    gaps = [k for k, kind in SIDECAR_SHOWN.items() if not isinstance(sidecar.get(k), kind)]
    for name, keys in (("fields", FIELDS_SHOWN), ("network", NETWORK_SHOWN)):
        if isinstance(sidecar.get(name), dict):
            gaps += [f"{name}.{k}" for k in keys if k not in sidecar[name]]
    if isinstance(sidecar.get("profile"), dict):
        gaps += [f"profile.{n}" for n, r in sidecar["profile"].items()
                 if not (isinstance(r, dict) and {"min", "opt", "max"} <= set(r))]
    return gaps


def _engine_lines(plan: Path, library_name: str) -> List[str]:
    """Device memory and fused layers from the deserialized engine, where a GPU allows it."""
    if current_capability() is None:
        return ["  device memory, fused engine layers: not shown: TensorRT deserializes plans only on a GPU, none here"]
    library = load_library(library_name)
    trt = library.trt
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan.read_bytes())
    if engine is None:
        return [f"  the plan does not deserialize on this GPU with {library.name} {library.version}"]
    inspector = engine.create_engine_inspector()
    layers = [inspector.get_layer_information(i, trt.LayerInformationFormat.ONELINE) for i in range(engine.num_layers)]
    return [f"  device memory (activations, max over the profile): {_mb(engine.device_memory_size_v2)}",
            f"  engine layers after fusion: {engine.num_layers}"] + [f"    {s}" for s in layers[:200]]


def inspect_dir(path: Path) -> List[str]:
    root = path / ENGINES_SUBDIR if (path / ENGINES_SUBDIR).is_dir() else path
    plans = sorted(root.rglob(f"*{PLAN_SUFFIX}"))
    if not plans:
        raise InvalidArgument(f"{path}: holds no {PLAN_SUFFIX} files (build them with `nova-deploy build-engines`)")
    lines = [f"{'engines':28s} {'graph':14s} {'plan':>9s}  {'build s':>7s}  key", ]
    total = 0
    shared: dict = {}
    for plan in plans:
        sidecar = read_sidecar(plan)
        problem = plan_problem(plan, sidecar)
        size = plan.stat().st_size
        total += size
        key = str(sidecar["key"])[:12] if sidecar else "-"
        for w in (sidecar or {}).get("weight_inputs", []):
            shared[(plan.parent.name, w["offset"], w["length"])] = w["length"]
        seconds = sidecar.get("build_seconds", "-") if sidecar else "-"
        lines.append(f"{plan.parent.name:28s} {plan.stem:14s} {_mb(size):>9s}  {seconds:>7}  {key}"
                     + ("" if problem is None else f"  NOT USABLE: {problem}"))
    weights = root.parent / WEIGHTS_FILE
    if weights.is_file():
        w = weights.stat().st_size
        lines.append(f"plans {_mb(total)} against {WEIGHTS_FILE} {_mb(w)} ({total / w:.1f}x): each plan embeds "
                     f"the weights its graph does not share")
        if shared:
            lines.append(f"shared weights (engine inputs, one device copy per engine set): {_mb(sum(shared.values()))}")
    return lines
