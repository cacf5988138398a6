"""The machine a run or benchmark ran on: CPU, cores, memory, SIMD features, library versions.

bfloat16 kernels differ between processors, so figures are comparable only between runs on the
same kind of machine (docs/results.md); run records and benchmark results carry this description."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpuinfo(field: str) -> str | None:
    path = Path("/proc/cpuinfo")
    lines = path.read_text().splitlines() if path.is_file() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(field)), None)


def machine() -> dict:
    meminfo = Path("/proc/meminfo")
    memory_kib = next((int(line.split()[1]) for line in (meminfo.read_text().splitlines() if meminfo.is_file() else [])
                       if line.startswith("MemTotal")), 0)
    import torch

    return {
        "cpu": _cpuinfo("model name") or platform.processor(), "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "simd": sorted(f for f in (_cpuinfo("flags") or "").split() if f.startswith(("avx512", "amx", "avx2"))),
        "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
    }
