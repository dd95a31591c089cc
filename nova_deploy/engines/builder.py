"""One ONNX graph -> one serialized engine (plan), with the builder's errors turned into one line.

    OnnxParser(network).parse_from_file(graph.onnx)   # external weights.bin read next to it
    one optimization profile from the spec            # min/opt/max of every dynamic input
    config: target, optimization level, timing cache
    builder.build_serialized_network(network, config)

Ctrl-C: TensorRT calls back into Python (logger, progress monitor) on the building thread, and an
exception raised there is caught and logged by TensorRT, which then carries on. So while a plan is
parsed and built, SIGINT only records the request; the progress monitor then cancels the build
at its next step, and KeyboardInterrupt is raised once the builder has returned, with no plan.
"""
import signal
import threading
import time
from contextlib import contextmanager
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


def _cancelling_monitor(library: Library, interrupted: threading.Event):
    """A progress monitor that cancels the build once interrupted is set; None where the library
    has no IProgressMonitor (the build then runs to its end before the interrupt is raised)."""
    trt = library.trt
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Cancelling(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            pass

        def step_complete(self, phase_name, step):
            return not interrupted.is_set()

        def phase_finish(self, phase_name):
            pass

    return Cancelling()


@contextmanager
def deferred_interrupt():
    """Within the block SIGINT sets the yielded event instead of raising inside TensorRT's
    callbacks; KeyboardInterrupt is raised when the block ends. Outside the main thread (where
    signal handlers cannot be set) the event is never set."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted.is_set():
        raise KeyboardInterrupt


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
    with deferred_interrupt() as interrupted:
        # None only when interrupted, and deferred_interrupt then raises KeyboardInterrupt
        return _build(library, onnx_path, profile, target, opt_level, timing_cache, what, model, interrupted)


def _build(library: Library, onnx_path: Path, profile: Profile, target: Target, opt_level: int,
           timing_cache: Optional[bytes], what: str, model: Optional[bytes],
           interrupted: threading.Event) -> Optional[BuiltPlan]:
    """The plan, or None when interrupted."""
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
    monitor = _cancelling_monitor(library, interrupted)
    if monitor is not None:
        config.progress_monitor = monitor
    if interrupted.is_set():
        return None
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if interrupted.is_set():
        return None
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
