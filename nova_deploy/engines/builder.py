"""One ONNX graph -> one serialized engine (plan), with the builder's errors turned into one line.

    OnnxParser(network).parse_from_file(graph.onnx)   # external weights.bin read next to it
    one optimization profile from the spec            # min/opt/max of every dynamic input
    config: target, optimization level, timing cache
    builder.build_serialized_network(network, config)
"""
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from nova_deploy.engines.errors import EngineError
from nova_deploy.engines.library import Library
from nova_deploy.engines.profiles import Profile
from nova_deploy.engines.targets import Target, configure_target

# TensorRT reports an allocation failure in its log, not through an exception
OUT_OF_MEMORY_HINTS = ("out of memory", "outofmemory", "cudaerrormemoryallocation", "failed to allocate")


@dataclass
class BuiltPlan:
    data: bytes
    seconds: float
    network: dict  # what the builder knew about the parsed network: layers by type and output dtype
    timing_cache: Optional[bytes]


def _logger(library: Library):
    """A TensorRT logger that keeps the errors (for the one-line message) and drops the chatter."""
    trt = library.trt

    class Collecting(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: List[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(str(msg).strip())

    return Collecting()


def network_summary(network) -> dict:
    """Layers by type and by the dtype of their first output: a strongly typed network runs each
    layer in the precision of the graph, so these are the precisions the engine computes in."""
    types, dtypes = Counter(), Counter()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        types[str(layer.type).split(".")[-1]] += 1
        if layer.num_outputs:
            dtypes[str(layer.get_output(0).dtype).split(".")[-1]] += 1
    return {"layers": network.num_layers, "by_type": dict(types.most_common()), "by_output_dtype": dict(dtypes)}


def build_plan(library: Library, onnx_path: Path, profile: Profile, target: Target, opt_level: int,
               timing_cache: Optional[bytes] = None, what: str = "", model: Optional[bytes] = None) -> BuiltPlan:
    """model: the graph serialized (e.g. with its shared weights lifted to inputs) to parse instead
    of the file; onnx_path still locates the external weights it references."""
    trt = library.trt
    what = what or Path(onnx_path).stem
    logger = _logger(library)
    builder = trt.Builder(logger)
    network = library.create_network(builder)
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse(model, str(onnx_path)) if model is not None else parser.parse_from_file(str(onnx_path))
    if not parsed:
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)] or logger.errors
        raise EngineError(f"{onnx_path}: TensorRT's ONNX parser refused the graph: {'; '.join(errors) or 'no reason given'}")
    names = {network.get_input(i).name for i in range(network.num_inputs)}
    if names != set(profile):
        raise EngineError(f"{onnx_path}: inputs {sorted(names)} differ from the manifest's {sorted(profile)}; "
                          f"the export directory is inconsistent, export it again")
    config = builder.create_builder_config()
    configure_target(library, config, target)
    config.builder_optimization_level = opt_level
    shapes = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        shapes.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(shapes)
    cache = library.set_timing_cache(config, timing_cache or b"")
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if plan is None:
        raise EngineError(_build_failure(library, what, target, logger.errors))
    return BuiltPlan(bytes(plan), seconds, network_summary(network),
                     bytes(cache.serialize()) if cache is not None else None)


def _build_failure(library: Library, what: str, target: Target, errors: List[str]) -> str:
    text = " ".join(errors).lower()
    where = f"{library.name} {library.version} could not build {what} for {target.name}"
    if any(h in text for h in OUT_OF_MEMORY_HINTS):
        return f"{where}: out of memory; lower --max-batch or free GPU/host memory"
    return f"{where}: {errors[-1] if errors else 'the builder returned no plan and logged no error'}"
