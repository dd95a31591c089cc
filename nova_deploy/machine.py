"""The CPU's name, for the records that say which machine a time was measured on (bench, train),
and whether it computes bfloat16 natively (what a bf16 export on the torch backend gains there)."""
from pathlib import Path


def cpu_name(fallback: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The model name in /proc/cpuinfo; fallback where there is none (not Linux)."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return fallback
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), fallback)


NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # bf16 dot products in hardware (oneDNN's fast path)


def cpu_bf16_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list:
    """Which of NATIVE_BF16_FLAGS the CPU has ([] where it has none, or /proc/cpuinfo is missing).
    Without them oneDNN converts bf16 to fp32 for every matmul, and bf16 runs slower than fp32."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    return [f for f in NATIVE_BF16_FLAGS if f in flags]
