"""One copy of weights.bin for every ONNX Runtime session of an export.

Each graph's large initializers point into the export's single weights.bin. Loading N graphs the
ordinary way reads (and MLAS may pre-pack) N copies: for d16 that is ten scale graphs holding all
16 blocks each, 1.2 GB apiece. Instead the file is mapped once, read-only, and every session gets
OrtValues that view the mapping (`SessionOptions.add_initializer`), so the weights exist once, in
the page cache, however many sessions use them. Used by the runtime's ONNX Runtime backend and by
export validation.
"""
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx

from nova_deploy.artifacts.names import WEIGHTS_FILE
from nova_deploy.errors import InvalidArgument

NUMPY_OF_ONNX = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16,
                 onnx.TensorProto.BFLOAT16: np.uint16, onnx.TensorProto.INT64: np.int64,
                 onnx.TensorProto.INT32: np.int32, onnx.TensorProto.DOUBLE: np.float64,
                 onnx.TensorProto.BOOL: np.bool_}


def map_weights_file(path: Path) -> np.ndarray:
    """The file's bytes, memory-mapped read-only."""
    # np.memmap refuses an empty file; a graph set without large initializers has one
    return np.memmap(path, dtype=np.uint8, mode="r") if Path(path).stat().st_size else np.empty(0, np.uint8)


def external_place(init: onnx.TensorProto) -> Optional[Tuple[str, int, int]]:
    """(location, offset, length) of an initializer stored in an external file, else None."""
    if init.data_location != onnx.TensorProto.EXTERNAL:
        return None
    info = {e.key: e.value for e in init.external_data}
    return info.get("location"), int(info.get("offset", 0)), int(info["length"])


class SharedWeights:
    """weights.bin mapped once; an OrtValue viewing each distinct stored tensor."""

    def __init__(self, path: Path):
        self.map = map_weights_file(path)
        self._values: Dict[tuple, object] = {}

    def value(self, offset: int, length: int, data_type: int, dims: List[int]):
        import onnxruntime as ort

        key = (offset, length, data_type, tuple(dims))
        if key not in self._values:
            if data_type not in NUMPY_OF_ONNX:
                raise InvalidArgument(f"{WEIGHTS_FILE}: initializer of ONNX type {data_type} is not supported")
            view = self.map[offset:offset + length].view(NUMPY_OF_ONNX[data_type]).reshape(dims)
            self._values[key] = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(view, data_type)
        return self._values[key]

    def add_to(self, so, model_path: Path) -> None:
        """Give the session options every weights.bin initializer of model_path, and no MLAS
        pre-packing (which would copy each MatMul weight per session)."""
        so.add_session_config_entry("session.disable_prepacking", "1")
        for name, offset, length, data_type, dims in external_initializers(model_path):
            so.add_initializer(name, self.value(offset, length, data_type, dims))


def external_initializers(model_path: Path) -> List[tuple]:
    """(name, offset, length, data_type, dims) of every initializer stored in weights.bin."""
    model = onnx.load(str(model_path), load_external_data=False)
    found = []
    for init in model.graph.initializer:
        place = external_place(init)
        if place is None:
            continue
        location, offset, length = place
        if location != WEIGHTS_FILE:
            raise InvalidArgument(f"{model_path}: initializer {init.name} lives in {location!r}, "
                                  f"not the export's {WEIGHTS_FILE}")
        found.append((init.name, offset, length, init.data_type, list(init.dims)))
    return found
