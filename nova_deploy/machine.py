"""The CPU's name, for the records that say which machine a time was measured on (bench, train),
and whether it computes bfloat16 natively (what a bf16 export on the torch backend gains there)."""
from pathlib import Path
from typing import List, Optional

CPUINFO = Path("/proc/cpuinfo")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # bf16 dot products in hardware (oneDNN's fast path)


def _cpuinfo_field(cpuinfo: Path, key: str) -> Optional[str]:
    """The value of the first `key : value` line of cpuinfo; None where there is none or no file (not Linux)."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return None
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(key)), None)


def cpu_name(fallback: str, cpuinfo: Path = CPUINFO) -> str:
    """The model name in /proc/cpuinfo; fallback where there is none (not Linux)."""
    return _cpuinfo_field(cpuinfo, "model name") or fallback


def cpu_bf16_flags(cpuinfo: Path = CPUINFO) -> List[str]:
    """Which of NATIVE_BF16_FLAGS the CPU has ([] where it has none, or /proc/cpuinfo is missing).
    Without them oneDNN converts bf16 to fp32 for every matmul, and bf16 runs slower than fp32."""
    flags = set((_cpuinfo_field(cpuinfo, "flags") or "").split())
    return [f for f in NATIVE_BF16_FLAGS if f in flags]
