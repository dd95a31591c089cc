"""What the TensorRT backend decides before it touches the GPU, as plain functions (tested without one).

- match_engine_io: the engine's I/O tensors are exactly the graph's inputs and outputs, each in its
  direction, so a plan built from another graph is refused before any binding.
- bindings: for one call, every tensor's name, shape and device address, in the spec's order.
- shared_device_memory: contexts run one after another on one stream, so one buffer of the largest
  size any engine needs serves all of them (instead of one allocation per engine).
- graph_bucket: the key a captured CUDA graph is replayed under. A CUDA graph replays fixed kernel
  arguments, i.e. fixed shapes and fixed addresses, so the key holds both.
"""
from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

from nova_deploy.engines.errors import EngineError
from nova_deploy.export.spec import GraphSpec


@dataclass(frozen=True)
class Binding:
    name: str
    is_input: bool
    shape: Tuple[int, ...]
    address: int


def match_engine_io(g: GraphSpec, engine_io: Mapping[str, bool], plan: str = "",
                    weight_inputs: Sequence[str] = ()) -> None:
    """engine_io: tensor name -> True for an input, False for an output (from the engine);
    weight_inputs: the weights its sidecar says were lifted to inputs (weight_inputs.py)."""
    want = {t.name: True for t in g.inputs} | {t.name: False for t in g.outputs} | {n: True for n in weight_inputs}
    missing = sorted(set(want) - set(engine_io))
    extra = sorted(set(engine_io) - set(want))
    flipped = sorted(n for n in set(want) & set(engine_io) if want[n] != engine_io[n])
    if missing or extra or flipped:
        parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else []) + \
                ([f"wrong direction {flipped}"] if flipped else [])
        raise EngineError(f"{plan or g.name}: the engine's tensors do not match graph {g.name} of the export "
                          f"({'; '.join(parts)}); rebuild with `nova-deploy build-engines`")


def bindings(g: GraphSpec, feeds: Mapping[str, "torch.Tensor"], outputs: Mapping[str, "torch.Tensor"]) -> List[Binding]:
    result = [Binding(t.name, True, tuple(feeds[t.name].shape), feeds[t.name].data_ptr()) for t in g.inputs]
    result += [Binding(t.name, False, tuple(outputs[t.name].shape), outputs[t.name].data_ptr()) for t in g.outputs]
    return result


def shared_device_memory(sizes: Mapping[str, int]) -> int:
    """Bytes of the one scratch buffer all execution contexts share: the largest any engine needs."""
    return max(sizes.values(), default=0)


def graph_bucket(g: GraphSpec, binds: List[Binding]) -> Tuple:
    return (g.name,) + tuple((b.name, b.shape, b.address) for b in binds)


def shapes_of(binds: List[Binding]) -> Dict[str, Tuple[int, ...]]:
    return {b.name: b.shape for b in binds if b.is_input}
