"""The TensorRT runtime backend: the export's graphs as engines built by `nova-deploy build-engines`.

    activate()   find the engine set for this GPU, check every sidecar against the export, load each
                 plan once (never a stale, partial or foreign one), one execution context per engine,
                 one device-memory buffer shared by all contexts (the largest any of them needs), and
                 the weights the engines take as inputs (build-engines --weights shared) uploaded
                 once from weights.bin and bound at the same address in every context
    infer()      (Backend) checks the feeds and allocates / checks the output buffers
    _run()       profile check, set_input_shape + set_tensor_address on the torch tensors (outputs
                 written in place: the KV and residual caches the caller passes), execute_async_v3
                 on one stream; with cuda_graphs, the first call per (graph, shapes, addresses)
                 runs eagerly, the second is captured, later ones replay the capture

Everything before the GPU is reached is plain code in nova_deploy.engines (io_plan, store,
profiles) and tested without a GPU. The execution path follows the documented TensorRT 10+ /
TensorRT-RTX Python API and polygraphy's TrtRunner; no machine available to this work could run
it (see docs/ENGINES.md), so its tests are marked trt_exec.
"""
import threading
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.engines.errors import EngineError
from nova_deploy.engines.io_plan import bindings, graph_bucket, match_engine_io, shapes_of, shared_device_memory
from nova_deploy.engines.library import LIBRARIES, Library, installed_libraries, load_library
from nova_deploy.engines.profiles import check_in_profile, profile_from_json
from nova_deploy.engines.store import ENGINES_SUBDIR, PLAN_SUFFIX, load_plan, read_sidecar
from nova_deploy.engines.targets import PORTABLE, Target, current_capability
from nova_deploy.engines.weight_inputs import WeightInput, check_in_file, device_weights, place_weights
from nova_deploy.errors import BackendUnavailable
from nova_deploy.export.spec import GraphSpec
from nova_deploy.runtime.backend import Backend


def find_engines_dir(export_path: Path, capability: Tuple[int, int], libraries: List[str]) -> Path:
    """The engine set for this GPU: <library>-sm<cc> first, then <library>-portable (RTX, Ampere+)."""
    root = Path(export_path) / ENGINES_SUBDIR
    for lib in libraries:
        for target in (Target(f"sm{capability[0]}{capability[1]}"), Target(PORTABLE)):
            candidate = root / f"{lib}-{target.name}"
            if target.runs_on(capability) and any(candidate.glob(f"*{PLAN_SUFFIX}")):
                return candidate
    found = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    raise EngineError(f"{export_path}: no engines for this GPU (compute capability {capability[0]}.{capability[1]}) "
                      f"with {' or '.join(libraries) or 'an installed TensorRT'}; found {found or 'none'}; build them "
                      f"with `nova-deploy build-engines {export_path} --compute-capability {capability[0]}.{capability[1]}`")


def _library_of(engines_dir: Path) -> str:
    return next(lib for lib in sorted(LIBRARIES, key=len, reverse=True) if engines_dir.name.startswith(lib + "-"))


def check_sidecar(export, g: GraphSpec, sidecar: Optional[dict], library: Library, plan: Path) -> None:
    """The plan was built from this export's graph and weights, by this library version."""
    if sidecar is None:
        raise EngineError(f"{plan}: no readable sidecar; rebuild with `nova-deploy build-engines`")
    f, files = sidecar["fields"], export.manifest["files"]
    stale = [what for what, ours, theirs in (("graph", files[g.file]["sha256"], f["onnx_sha256"]),
                                            ("weights", files[WEIGHTS_FILE]["sha256"], f["weights_sha256"]))
             if ours != theirs]
    if stale:
        raise EngineError(f"{plan}: built from another {' and '.join(stale)} than {export.path} holds now; "
                          f"rebuild with `nova-deploy build-engines {export.path}`")
    if (f["library"], f["library_version"]) != (library.name, library.version):
        raise EngineError(f"{plan}: built by {f['library']} {f['library_version']}, this runtime is {library.name} "
                          f"{library.version}; rebuild, or install that version")


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, export, device="cuda", threads: Optional[int] = None, engines_dir=None,
                 cuda_graphs: bool = True):
        super().__init__(export, device, threads)
        self.engines_dir = Path(engines_dir) if engines_dir else None
        self.cuda_graphs = cuda_graphs
        self._engines: Dict[str, object] = {}
        self._contexts: Dict[str, object] = {}
        self._profiles: Dict[str, dict] = {}
        self._graphs: Dict[tuple, object] = {}
        self._seen: set = set()
        self._scratch: Optional[torch.Tensor] = None
        self._weights: Optional[torch.Tensor] = None  # the shared weights, each distinct tensor once
        self._stream: Optional[torch.cuda.Stream] = None
        # every context shares one scratch buffer and one stream: calls from several threads take turns
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    def _require_gpu(self) -> Tuple[int, int]:
        capability = current_capability()
        if self.device.type != "cuda" or capability is None:
            fix = "give --device cuda" if capability else "no CUDA GPU here; use --backend onnxruntime or torch"
            raise BackendUnavailable(f"the tensorrt backend runs on a CUDA GPU, not on device {self.device}: {fix}")
        if not installed_libraries():
            raise BackendUnavailable("the tensorrt backend needs TensorRT: pip install tensorrt (or tensorrt-rtx "
                                     "on RTX/Ampere+ GPUs), or NVIDIA's TensorRT container (docker/)")
        return capability

    def activate(self) -> None:
        if self.active:
            return
        capability = self._require_gpu()
        root = self.engines_dir or find_engines_dir(self.export.path, capability, installed_libraries())
        library = load_library(_library_of(root))
        trt = library.trt
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        sizes, lifted = {}, {}
        weights_bytes = self.export.manifest["files"][WEIGHTS_FILE]["bytes"]
        for g in self.spec.graphs:
            plan = root / f"{g.name}{PLAN_SUFFIX}"
            sidecar = read_sidecar(plan)
            check_sidecar(self.export, g, sidecar, library, plan)
            engine = runtime.deserialize_cuda_engine(load_plan(plan))
            if engine is None:
                raise EngineError(f"{plan}: {library.name} {library.version} could not deserialize it on this GPU "
                                  f"({capability[0]}.{capability[1]}); rebuild for it")
            lifted[g.name] = [WeightInput.from_json(w) for w in sidecar.get("weight_inputs", [])]
            check_in_file(lifted[g.name], weights_bytes, str(plan))
            match_engine_io(g, {engine.get_tensor_name(i): engine.get_tensor_mode(engine.get_tensor_name(i))
                                == trt.TensorIOMode.INPUT for i in range(engine.num_io_tensors)}, str(plan),
                            [w.name for w in lifted[g.name]])
            # user-managed: the context gets its scratch memory from us (set_device_memory below)
            self._contexts[g.name] = engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
            self._engines[g.name] = engine
            self._profiles[g.name] = profile_from_json(sidecar["profile"])
            sizes[g.name] = engine.device_memory_size_v2
        self._scratch = torch.empty(shared_device_memory(sizes), dtype=torch.uint8, device=self.device)
        for ctx in self._contexts.values():
            ctx.set_device_memory(self._scratch.data_ptr(), self._scratch.numel())
        placement = place_weights(lifted.values())
        self._weights = device_weights(self.export.file(WEIGHTS_FILE), placement, self.device)
        for name, weights in lifted.items():  # static shapes, fixed addresses: bound once for good
            for w in weights:
                self._contexts[name].set_tensor_address(w.name, self._weights.data_ptr() + placement.offsets[w.key])
        self._stream = torch.cuda.Stream(device=self.device)
        self.active = True

    def deactivate(self) -> None:
        self._graphs.clear()
        self._seen.clear()
        self._contexts.clear()  # contexts before engines: a context refers to its engine
        self._engines.clear()
        self._scratch = None
        self._weights = None
        self._stream = None
        self.active = False

    # ------------------------------------------------------------------ running
    def _run(self, g: GraphSpec, feeds: Mapping[str, torch.Tensor], outputs: Dict[str, torch.Tensor]) -> None:
        with self._lock:
            self._run_locked(g, feeds, outputs)

    def _run_locked(self, g: GraphSpec, feeds: Mapping[str, torch.Tensor], outputs: Dict[str, torch.Tensor]) -> None:
        binds = bindings(g, feeds, outputs)
        check_in_profile(g.name, self._profiles[g.name], shapes_of(binds))
        ctx, stream = self._contexts[g.name], self._stream
        stream.wait_stream(torch.cuda.current_stream(self.device))  # the feeds were written on the caller's stream
        key = graph_bucket(g, binds)
        captured = self._graphs.get(key)
        if captured is not None:
            with torch.cuda.stream(stream):
                captured.replay()
        else:
            for b in binds:
                if b.is_input:
                    ctx.set_input_shape(b.name, b.shape)
                ctx.set_tensor_address(b.name, b.address)
            if self.cuda_graphs and key in self._seen:
                # captured on the second call: the first one flushed TensorRT's deferred shape updates
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=stream):
                    self._execute(ctx, stream, g)
                graph.replay()
                self._graphs[key] = graph
            else:
                self._execute(ctx, stream, g)
                self._seen.add(key)
        torch.cuda.current_stream(self.device).wait_stream(stream)

    @staticmethod
    def _execute(ctx, stream, g: GraphSpec) -> None:
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise EngineError(f"graph {g.name}: TensorRT's execute_async_v3 failed (see its log above)")
