"""The engine errors: subclasses of the package's one hierarchy, so the CLI prints them as one line."""
from nova_deploy.errors import NovaDeployError


class EngineError(NovaDeployError):
    """A build that failed, or a plan that cannot be used (stale, corrupt, for another GPU or library)."""
