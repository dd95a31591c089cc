"""A partial export of the bundled (default) model, fast enough for the test suite.

A full `nova-deploy export` of the bundled model traces 16 graphs and validates them against
PyTorch (minutes on 2 cores). The engine tests need real graphs of the default model, not their
validation (tests/export covers that), so this traces only the graphs asked for, writes them with
the exporter's own GraphWriter (shared weights.bin) and a manifest from the exporter's
build_manifest listing those files. The manifest says how it was made ("validation" below); it is
marked valid because nova-deploy build-engines refuses exports that are not.
"""
from pathlib import Path
from typing import Sequence

import torch

from nova_deploy.artifacts.hashing import file_size, sha256_file
from nova_deploy.artifacts.manifest import write_manifest
from nova_deploy.export.exporter import source_record
from nova_deploy.export.model_check import configs_of
from nova_deploy.export.graphs import graph_module
from nova_deploy.export.manifest import build_manifest, model_fingerprint
from nova_deploy.export.onnx_io import GraphWriter, dummy_inputs, export_graph, trace_sizes
from nova_deploy.export.spec import build_spec
from nova_deploy.model_source import resolve_models


def export_bundled_graphs(out: Path, names: Sequence[str], max_batch: int = 8) -> Path:
    torch.set_num_threads(1)
    src = resolve_models(None, None, None)  # nothing selected: the bundled reference model
    var_cfg, vae_cfg = configs_of(src.var, src.vae)
    spec = build_spec(var_cfg, vae_cfg, max_batch=max_batch)
    out.mkdir(parents=True)
    writer = GraphWriter(out)
    try:
        for name in names:
            g = spec.graph(name)
            module = graph_module(g, spec, src.var, src.vae)
            writer.write(export_graph(module, g, dummy_inputs(g, trace_sizes(g), var_cfg.num_classes), spec.opset), g.file)
    finally:
        writer.close()
    files = {p.name: {"sha256": sha256_file(p), "bytes": file_size(p)} for p in sorted(out.iterdir())}
    write_manifest(out, build_manifest(
        spec_json=spec.to_json(), valid=True, fingerprint=model_fingerprint(src.var, src.vae),
        source=source_record(src), description=src.description, var_config=var_cfg, vqvae_config=vae_cfg,
        files=files, weights={"bytes_on_disk": files["weights.bin"]["bytes"]},
        validation={"skipped": f"tests/engines partial export of graphs {list(names)}; not validated here"}))
    return out
