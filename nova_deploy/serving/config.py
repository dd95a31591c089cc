"""The settings of a Triton model over an export, and the config.pbtxt they become.

Every field of the generated config.pbtxt is explained in docs/SERVING.md.
"""
from dataclasses import dataclass
from typing import List, Optional

from nova_deploy.errors import require

BACKENDS = ("onnxruntime", "tensorrt", "torch")
DEVICES = ("cpu", "cuda")
MODEL_VERSION = "1"
EXPORT_SUBDIR = "export"  # the export, copied inside the version directory
CHECKPOINTS_SUBDIR = "checkpoints"  # --backend torch: the checkpoints the torch backend reloads


@dataclass(frozen=True)
class ServingOptions:
    name: str = "nova"
    backend: str = "onnxruntime"
    device: str = "cpu"
    instances: int = 1  # model instances (one process each) per device
    max_batch: Optional[int] = None  # None: the export's max batch
    dynamic_batching: bool = True
    max_queue_delay_us: int = 5000
    threads: int = 0  # per instance; 0: the runtime backend's default

    def __post_init__(self):
        require(self.backend in BACKENDS, f"unknown backend {self.backend!r}; valid: {', '.join(BACKENDS)}")
        require(self.device in DEVICES, f"unknown device {self.device!r}; valid: {', '.join(DEVICES)}")
        require(not (self.backend == "tensorrt" and self.device == "cpu"),
                "backend tensorrt runs on cuda only: add --device cuda, or use --backend onnxruntime on cpu")
        require(bool(self.name) and all(c.isalnum() or c in "_-" for c in self.name) and not self.name.startswith("."),
                f"model name {self.name!r}: use letters, digits, '_' and '-' only")
        require(self.instances >= 1, f"--instances must be >= 1, got {self.instances}")
        require(self.max_batch is None or self.max_batch >= 1, f"--max-batch must be >= 1, got {self.max_batch}")
        require(self.max_queue_delay_us >= 0, f"--max-queue-delay-us must be >= 0, got {self.max_queue_delay_us}")
        require(self.threads >= 0, f"--threads must be >= 0, got {self.threads}")


def preferred_batch_sizes(max_batch: int) -> List[int]:
    """Powers of two from 2 below max_batch, then max_batch: the sizes the batcher waits to fill."""
    sizes = [p for p in (2 ** i for i in range(1, max_batch.bit_length())) if p < max_batch]
    return sizes + [max_batch]


def config_pbtxt(opts: ServingOptions, max_batch: int, image_hw: int) -> str:
    """The model configuration in Triton's protobuf text format."""
    lines = [
        f'name: "{opts.name}"',
        'backend: "python"',
        f"max_batch_size: {max_batch}",
        "input [",
        _tensor("class_id", "TYPE_INT32", [1]) + ",",
        _tensor("seed", "TYPE_INT64", [1]) + ",",
        _tensor("cfg", "TYPE_FP32", [1], optional=True) + ",",
        _tensor("top_k", "TYPE_INT32", [1], optional=True) + ",",
        _tensor("top_p", "TYPE_FP32", [1], optional=True) + ",",
        _tensor("policy", "TYPE_STRING", [1], optional=True) + ",",
        _tensor("draw", "TYPE_STRING", [1], optional=True),
        "]",
        "output [",
        _tensor("image", "TYPE_UINT8", [3, image_hw, image_hw]) + ",",
        _tensor("trace", "TYPE_STRING", [1]),
        "]",
    ]
    if opts.dynamic_batching:
        lines += ["dynamic_batching {",
                  f"  preferred_batch_size: [ {', '.join(map(str, preferred_batch_sizes(max_batch)))} ]",
                  f"  max_queue_delay_microseconds: {opts.max_queue_delay_us}",
                  "}"]
    kind = "KIND_GPU" if opts.device == "cuda" else "KIND_CPU"
    lines += ["instance_group [", f"  {{ count: {opts.instances}, kind: {kind} }}", "]"]
    lines += ["parameters [",
              _parameter("nova_backend", opts.backend) + ",",
              _parameter("nova_threads", str(opts.threads)),
              "]"]
    return "\n".join(lines) + "\n"


def _tensor(name: str, dtype: str, dims: List[int], optional: bool = False) -> str:
    extra = ", optional: true" if optional else ""
    return f'  {{ name: "{name}", data_type: {dtype}, dims: [ {", ".join(map(str, dims))} ]{extra} }}'


def _parameter(key: str, value: str) -> str:
    return f'  {{ key: "{key}", value: {{ string_value: "{value}" }} }}'
