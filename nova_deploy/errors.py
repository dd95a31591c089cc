"""One small error hierarchy. The CLI turns any of these into one line and exit code 2."""


class NovaDeployError(Exception):
    """Base of every error the user can cause and fix."""


class InvalidArgument(NovaDeployError, ValueError):
    """A value outside its valid range; the message names the value and the range."""


class CheckpointError(NovaDeployError):
    """A checkpoint file that cannot be read or does not fit the model."""


class ExportError(NovaDeployError):
    """An export or its validation failed."""


class BackendUnavailable(NovaDeployError):
    """A runtime backend that is not installed or has no device."""


class GraphRunError(NovaDeployError):
    """A graph that failed inside its backend on inputs that passed the spec's checks: the graph
    does not compute what its manifest declares (a manifest edited after export), or the backend
    failed (out of memory on the device, a broken engine)."""


def require(condition: bool, message: str) -> None:
    """Raise InvalidArgument(message) unless condition; used instead of assert on user input."""
    if not condition:
        raise InvalidArgument(message)


class WriteError(NovaDeployError):
    """A file or directory that could not be written (missing directory, no permission, full disk,
    file-size limit); the message names the path and the OS error."""
