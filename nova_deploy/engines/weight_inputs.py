"""Weights that several engines share become engine inputs, bound to one device copy at run time.

The ten scale graphs of an export hold the same transformer blocks; built as they are, every scale
engine embeds its own copy (docs/ENGINES.md: the bundled model's scale plans hold 9.1x its VAR
weights). With `--weights shared` (the default), every initializer that more than one graph of the
export references is turned into a graph input before TensorRT parses the graph: the plan then
carries no copy, and the TensorRT backend uploads each such tensor once and binds the same device
address in every engine. Tensors used by one graph only (the decoder's convolutions, a scale's
resampling matrix) stay embedded, where TensorRT may fold and pre-transform them.

The export itself is not changed: the lifted graph is serialized in memory and parsed with the
export's path, so the weights TensorRT still embeds are read from the export's weights.bin.
"""
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import onnx
from onnx import helper

from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.engines.errors import EngineError
from nova_deploy.export.shared_weights import external_initializers, external_place, map_weights_file

DEVICE_ALIGN = 256  # TensorRT wants tensor addresses 256-byte aligned

WeightKey = Tuple[int, int, int, Tuple[int, ...]]  # offset, length, ONNX data type, dims in weights.bin


@dataclass(frozen=True)
class WeightInput:
    """An engine input that is a weight: where its bytes are in the export's weights.bin."""
    name: str
    offset: int
    length: int
    data_type: int  # onnx.TensorProto element type
    dims: Tuple[int, ...]

    @property
    def key(self) -> WeightKey:
        return (self.offset, self.length, self.data_type, self.dims)

    def to_json(self) -> dict:
        return {**asdict(self), "dims": list(self.dims)}

    @classmethod
    def from_json(cls, raw: Mapping) -> "WeightInput":
        return cls(str(raw["name"]), int(raw["offset"]), int(raw["length"]), int(raw["data_type"]),
                   tuple(int(d) for d in raw["dims"]))


def shared_weight_keys(graph_paths: Iterable[Path]) -> set:
    """The weights.bin tensors that more than one of the graphs reference."""
    uses: Counter = Counter()
    for path in graph_paths:
        keys = {(off, length, dtype, tuple(dims)) for _, off, length, dtype, dims in external_initializers(path)}
        uses.update(keys)
    return {k for k, n in uses.items() if n > 1}


def lift_weights(onnx_path: Path, shared: set) -> Tuple[bytes, List[WeightInput]]:
    """The graph, serialized, with every initializer whose key is in `shared` turned into a graph
    input of the same name, dtype and shape; and those inputs."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    lifted: List[WeightInput] = []
    kept = []
    for init in model.graph.initializer:
        place = external_place(init)
        if place is not None and place[0] == WEIGHTS_FILE:
            w = WeightInput(init.name, place[1], place[2], init.data_type, tuple(init.dims))
            if w.key in shared:
                lifted.append(w)
                continue
        kept.append(init)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    model.graph.input.extend(helper.make_tensor_value_info(w.name, w.data_type, list(w.dims)) for w in lifted)
    return model.SerializeToString(), lifted


def weight_profile(weights: Sequence[WeightInput]) -> Dict[str, tuple]:
    """Optimization-profile entries of weight inputs: their one static shape."""
    return {w.name: (w.dims, w.dims, w.dims) for w in weights}


@dataclass(frozen=True)
class WeightPlacement:
    """Where each distinct shared weight lives in the one device buffer all engines bind."""
    offsets: Dict[WeightKey, int]  # key -> byte offset in the device buffer
    total_bytes: int


def place_weights(per_engine: Iterable[Sequence[WeightInput]]) -> WeightPlacement:
    """Each distinct tensor once, at a DEVICE_ALIGN-aligned offset, in first-use order."""
    offsets: Dict[WeightKey, int] = {}
    end = 0
    for weights in per_engine:
        for w in weights:
            if w.key in offsets:
                continue
            start = -(-end // DEVICE_ALIGN) * DEVICE_ALIGN
            offsets[w.key] = start
            end = start + w.length
    return WeightPlacement(offsets, end)


def device_weights(weights_file: Path, placement: WeightPlacement, device) -> "torch.Tensor":
    """One buffer on `device` holding each placed tensor, copied from the export's weights.bin."""
    import numpy as np
    import torch

    buffer = torch.empty(placement.total_bytes, dtype=torch.uint8, device=device)
    if not placement.offsets:
        return buffer
    source = map_weights_file(weights_file)
    for (offset, length, _, _), at in placement.offsets.items():
        buffer[at:at + length].copy_(torch.from_numpy(np.array(source[offset:offset + length])))
    return buffer


def check_in_file(weights: Sequence[WeightInput], file_bytes: int, plan: str) -> None:
    """A sidecar's weight inputs lie inside weights.bin (else the plan belongs to another export)."""
    bad = [w.name for w in weights if w.offset < 0 or w.offset + w.length > file_bytes]
    if bad:
        raise EngineError(f"{plan}: weight inputs {bad[:3]} lie outside {WEIGHTS_FILE} ({file_bytes} bytes); "
                          f"rebuild with `nova-deploy build-engines`")
