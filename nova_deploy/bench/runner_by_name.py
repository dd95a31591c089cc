"""A runner by its bench name: a runtime backend, the reference sampler or the torch-compile peer."""
from typing import Optional

from nova_deploy.bench.compiled_runner import CompiledRunner
from nova_deploy.bench.configs import REFERENCE, TORCH_COMPILE
from nova_deploy.bench.runners import ReferenceRunner, Runner, RuntimeRunner


def open_runner(name: str, export, device: str = "cpu", threads: Optional[int] = None) -> Runner:
    """BackendUnavailable when the runner cannot run here (library, device or compiler missing)."""
    if name == REFERENCE:
        return ReferenceRunner(export, device)
    if name == TORCH_COMPILE:
        return CompiledRunner(export, device)
    return RuntimeRunner(name, export, device, threads)
