"""A real tritonserver on this machine, on 127.0.0.1, for tests and load measurements.

The binary and its Python backend come from the `nvidia-pytriton` wheel (Linux x86_64). Its
Python-backend stub links the system libpython, so the model runs under the system python3:

    install:  a venv of the system python3 with torch, the project's dependencies and nvidia-pytriton,
              the stub for that Python copied into the backend directory; cached under a key of
              what it holds, built in a temporary directory and renamed when complete
    overlay:  per server, a bare venv whose one .pth file adds the install's site-packages and the
              checkout to import nova_deploy from (the stub ignores PYTHONPATH; it finds its Python
              as `python3` on PATH)
    server:   tritonserver --model-repository REPO on free 127.0.0.1 ports, explicit model control
              (every model loaded at start), stopped with its process group
"""
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

SYSTEM_PYTHON = "/usr/bin/python3"
PYTRITON = "nvidia-pytriton==0.7.0"
DEFAULT_CACHE = Path.home() / ".cache" / "nova-deploy"


class PlatformUnsupported(Exception):
    """This machine cannot run the wheel's tritonserver; the message says why."""


def _run(cmd: Sequence[str], timeout: float) -> None:
    done = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def system_python_version(python: str = SYSTEM_PYTHON) -> str:
    """'3.11' for the system python3; PlatformUnsupported where the wheel's server cannot run."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise PlatformUnsupported(f"the nvidia-pytriton tritonserver runs on Linux x86_64, not {sys.platform} "
                                  f"{platform.machine()}")
    if not Path(python).is_file():
        raise PlatformUnsupported(f"no system Python at {python} (the Python backend stub links its libpython)")
    out = subprocess.run([python, "-c", "import sys, ensurepip, venv; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise PlatformUnsupported(f"{python} cannot make a venv (install python3-venv): {out.stderr.strip()[-300:]}")
    return out.stdout.strip()


def project_requirements(repo_root: Path) -> List[str]:
    """torch at this process's version (the local CPU wheel), the project's dependencies, nvidia-pytriton."""
    try:
        import tomllib  # Python >= 3.11; only this helper needs it
    except ModuleNotFoundError:
        raise PlatformUnsupported("reading pyproject.toml needs Python >= 3.11 (tomllib)") from None
    import torch

    deps = tomllib.loads((Path(repo_root) / "pyproject.toml").read_text())["project"]["dependencies"]
    return [f"torch=={torch.__version__.split('+')[0]}", *[d for d in deps if not d.startswith("torch")], PYTRITON]


@dataclass(frozen=True)
class TritonInstall:
    venv: Path
    python_version: str

    @property
    def site_packages(self) -> Path:
        return self.venv / "lib" / f"python{self.python_version}" / "site-packages"

    @property
    def server_dir(self) -> Path:
        return self.site_packages / "pytriton" / "tritonserver"

    @property
    def binary(self) -> Path:
        return self.server_dir / "bin" / "tritonserver"

    @property
    def backends(self) -> Path:
        return self.server_dir / "backends"


def prepare_install(requirements: Sequence[str], cache: Path = DEFAULT_CACHE, python: str = SYSTEM_PYTHON,
                    log=print) -> TritonInstall:
    version = system_python_version(python)
    key = hashlib.sha256(json.dumps([python, version, sorted(requirements)]).encode()).hexdigest()[:16]
    venv = Path(cache) / f"triton-venv-{key}"
    install = TritonInstall(venv, version)
    if (venv / ".complete").is_file():
        return install
    Path(cache).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".triton-venv-{key}.", dir=cache))
    try:
        log(f"preparing the tritonserver environment in {venv} (once; a few minutes)")
        _run([python, "-m", "venv", tmp], timeout=300)
        _run([tmp / "bin" / "python", "-m", "pip", "install", "-q", *requirements], timeout=1800)
        staged = TritonInstall(tmp, version)
        stub = staged.server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.is_file():
            raise PlatformUnsupported(f"{PYTRITON} ships no Python backend stub for Python {version}")
        shutil.copy2(stub, staged.backends / "python" / stub.name)
        (tmp / ".complete").write_text(json.dumps(sorted(requirements)) + "\n")
        try:
            os.rename(tmp, venv)  # site-packages resolve from the interpreter's place: the venv may move
        except OSError:  # another process finished the same install first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return install


def make_overlay(install: TritonInstall, code_root: Path, dest: Path, python: str = SYSTEM_PYTHON) -> Path:
    """A bare venv at dest importing the install's packages and nova_deploy from code_root."""
    _run([python, "-m", "venv", "--without-pip", dest], timeout=120)
    site = dest / "lib" / f"python{install.python_version}" / "site-packages"
    (site / "nova_deploy_checkout.pth").write_text(
        f"import site; site.addsitedir({str(install.site_packages)!r})\n{Path(code_root).resolve()}\n")
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalTritonServer:
    """tritonserver for one repository; a context manager that always stops it."""

    def __init__(self, install: TritonInstall, repository: Path, overlay: Path, log_path: Path,
                 extra_args: Sequence[str] = ()):
        self.install, self.repository, self.overlay, self.log_path = install, Path(repository), overlay, log_path
        self.extra_args = list(extra_args)
        self.process: Optional[subprocess.Popen] = None
        self.http_port = self.grpc_port = 0

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 300) -> "LocalTritonServer":
        self.http_port, self.grpc_port = free_port(), free_port()
        cmd = [self.install.binary, "--model-repository", self.repository,
               "--backend-directory", self.install.backends,
               "--http-address", "127.0.0.1", "--http-port", self.http_port,
               "--grpc-address", "127.0.0.1", "--grpc-port", self.grpc_port,
               "--allow-metrics", "false", "--model-control-mode", "explicit", "--load-model", "*",
               "--exit-timeout-secs", "10", *self.extra_args]
        env = {**os.environ, "PATH": f"{self.overlay / 'bin'}:{os.environ.get('PATH', '')}"}
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(list(map(str, cmd)), env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({self.process.returncode}) while starting:\n{self.log_tail()}")
            if self.ready():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"tritonserver not ready within {timeout_s:.0f} s:\n{self.log_tail()}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        try:  # Python-backend stubs left behind by the server share its process group
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()
        self.process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def http_client_per_thread(url: str, timeout_s: float):
    """A function giving each calling thread its own tritonclient HTTP client of url (a client is
    not thread-safe); for load tools and tests that send from many threads."""
    import threading

    import tritonclient.http as triton_http

    local = threading.local()

    def client():
        if not hasattr(local, "client"):
            local.client = triton_http.InferenceServerClient(url, network_timeout=timeout_s)
        return local.client
    return client
