"""The CPU's name, for the records that say which machine a time was measured on (bench, train)."""
from pathlib import Path


def cpu_name(fallback: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The model name in /proc/cpuinfo; fallback where there is none (not Linux)."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return fallback
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), fallback)
