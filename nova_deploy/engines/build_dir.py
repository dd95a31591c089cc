"""Build (or reuse) one plan per graph of an export directory, for each target.

For every (target, graph): the cache key from the ONNX and weights sha256 (read from disk and
checked against the manifest by the export loader, nova_deploy.artifacts), library, target,
profile and options; an intact plan with that key is kept, anything else is rebuilt and written
atomically (store.py). Only the files the build reads are checked, so a directory holding a
subset of the graphs can still build that subset (--graph).
"""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from nova_deploy.artifacts.export_dir import ExportDir
from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.atomic_write import ensure_dir, write_bytes_atomic
from nova_deploy.engines.builder import build_plan
from nova_deploy.engines.cache_key import BuildOptions, engine_key, key_fields
from nova_deploy.engines.errors import EngineError
from nova_deploy.engines.library import Library
from nova_deploy.engines.profiles import check_max_batch, narrow_to_batch, profile_to_json
from nova_deploy.engines.store import PLAN_SUFFIX, engines_dir, plan_problem, read_sidecar, write_plan
from nova_deploy.engines.targets import Target
from nova_deploy.engines.weight_inputs import lift_weights, shared_weight_keys, weight_profile
from nova_deploy.errors import InvalidArgument
from nova_deploy.export.manifest import open_export
from nova_deploy.export.spec import ExportSpec, GraphSpec


@dataclass
class EngineResult:
    graph: str
    target: str
    plan: Path
    built: bool  # False: the cached plan had the same key
    seconds: float  # build time (0 when cached)
    plan_bytes: int
    reason: str  # why it was (re)built, or "cached"


def select_graphs(spec: ExportSpec, names: Optional[Sequence[str]]) -> List[GraphSpec]:
    if not names:
        return list(spec.graphs)
    valid = [g.name for g in spec.graphs]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise InvalidArgument(f"--graph {', '.join(unknown)}: not in this export; valid: {', '.join(valid)}")
    return [spec.graph(n) for n in dict.fromkeys(names)]


def verified_sha256(export: ExportDir, names: Sequence[str]) -> Dict[str, str]:
    """sha256 of the files the build reads, computed now and equal to the manifest's (the loader's
    checks: inside the directory, size, sha256); EngineError otherwise."""
    try:
        return export.verify(names)
    except InvalidArgument as e:
        raise EngineError(f"{e}; export again") from None


def build_engines(export_path, library: Library, targets: Sequence[Target], options: BuildOptions = BuildOptions(),
                  graphs: Optional[Sequence[str]] = None, progress: bool = False,
                  expect_sha256: Optional[str] = None) -> List[EngineResult]:
    """expect_sha256: the manifest's digest the caller trusts; the export is refused when it differs."""
    from tqdm import tqdm

    export_path = Path(export_path)
    export = open_export(export_path, expect_sha256=expect_sha256, check_files=False)
    manifest, spec = export.manifest, export.spec
    max_batch = check_max_batch(spec, options.max_batch)
    chosen = select_graphs(spec, graphs)
    # shared weights are chosen over every graph present, so a --graph subset lifts the same tensors
    read = [g for g in spec.graphs if (export_path / g.file).is_file()] if options.weights == "shared" else chosen
    digests = verified_sha256(export, [WEIGHTS_FILE, *dict.fromkeys(g.file for g in read + chosen)])
    weights_sha = digests[WEIGHTS_FILE]
    onnx_sha = {g.name: digests[g.file] for g in chosen}
    cache_blob = _read_timing_cache(options.timing_cache)
    shared = set()
    if options.weights == "shared":
        shared = shared_weight_keys(export_path / g.file for g in read)
    # (serialized graph with its shared weights as inputs, those inputs): the same for every target
    lifted_graphs = {g.name: lift_weights(export_path / g.file, shared) if shared else (None, []) for g in chosen}

    results = []
    jobs = [(t, g) for t in targets for g in chosen]
    bar = tqdm(jobs, desc=f"build-engines ({library.name})", unit="engine", disable=not progress)
    for target, g in bar:
        bar.set_postfix_str(f"{target.name}/{g.name}")
        out_dir = engines_dir(export_path, library.name, target.name)
        ensure_dir(out_dir)
        plan = out_dir / f"{g.name}{PLAN_SUFFIX}"
        model, lifted = lifted_graphs[g.name]
        profile = {**narrow_to_batch(g, max_batch).profile(), **weight_profile(lifted)}
        fields = key_fields(onnx_sha[g.name], weights_sha, library.name, library.version, target, profile,
                            options.hashed(max_batch, [w.name for w in lifted]))
        reason = plan_problem(plan, read_sidecar(plan), fields)
        if reason is None:
            results.append(EngineResult(g.name, target.name, plan, False, 0.0, plan.stat().st_size, "cached"))
            continue
        built = build_plan(library, export_path / g.file, profile, target, options.opt_level, cache_blob,
                           what=f"{g.name}", model=model)
        if built.timing_cache is not None:
            cache_blob = built.timing_cache
        write_plan(plan, built.data, {
            "key": engine_key(fields), "fields": fields, "graph": g.name, "onnx": g.file,
            "export": {"fingerprint": manifest["model"]["fingerprint"], "description": manifest["model"].get("description")},
            "profile": profile_to_json(profile), "network": built.network,
            "weight_inputs": [w.to_json() for w in lifted],
            "build_seconds": round(built.seconds, 3), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        results.append(EngineResult(g.name, target.name, plan, True, built.seconds, len(built.data), reason))
    if options.timing_cache is not None and cache_blob:
        write_bytes_atomic(Path(options.timing_cache), cache_blob)
    return results


def _read_timing_cache(path: Optional[Path]) -> Optional[bytes]:
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise InvalidArgument(f"--timing-cache {path}: is a directory; give a file path (created when missing)")
    return path.read_bytes() if path.is_file() else None
