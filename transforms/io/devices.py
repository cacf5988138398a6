"""Where a model runs: the `device` setting of every model-running stage (generate, evaluate, each
judge model, curate.semantic_dedup).

`auto` is CUDA when the process that loads the model sees a GPU (on Dataflow: the worker's), else
CPU; on a worker with several GPUs each process takes one, spread evenly (`_gpu_of_this_process`).
`cpu`, `cuda` and `cuda:N` are taken as written. The form is checked when params.yaml is read
(`require_device`); that the GPU exists, when the stage starts (`check_available`) and again where
the model loads (`resolve`), so a missing GPU is reported with its params key before any work.
Where rows were actually made is counted on the worker (`count_rows`, a Beam counter per device)
and read back by the stage (`used`) for its manifest."""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from pathlib import Path

from transforms.settings import ConfigError, require

AUTO = "auto"
_FORM = re.compile(r"auto|cpu|cuda(:\d+)?")
METRICS_NAMESPACE = "selfsift.device"  # a Beam counter per device: the rows made there
GPU_SLOTS = Path(tempfile.gettempdir()) / "selfsift-gpu-slots"  # one lock per process that took a GPU
_claim: dict = {}  # this process's GPU slot: pid, slot, and the open lock file that holds it


def require_device(value: str, where: str) -> None:
    """Refuses a setting `{where}.device` that is not auto, cpu, cuda or cuda:N."""
    require(bool(_FORM.fullmatch(value)), f"{where}.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not {value!r}")


def resolve(value: str, where: str) -> str:
    """The torch device the setting `{where}.device` names here ('cpu', 'cuda', 'cuda:1'); a GPU asked
    for but absent is a ConfigError naming the key."""
    import torch

    require_device(value, where)
    if value == AUTO:
        if not torch.cuda.is_available():
            return "cpu"
        return _gpu_of_this_process(torch.cuda.device_count()) if torch.cuda.device_count() > 1 else "cuda"
    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{where}.device is {value!r}, but this machine has no CUDA device that torch "
                              f"{torch.__version__} can use (CUDA build: {torch.version.cuda or 'none'}); "
                              f"set it to 'auto' or 'cpu'")
        index = int(value.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{where}.device is {value!r}, but this machine has {torch.cuda.device_count()} CUDA "
                              f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return value


def check_available(value: str, where: str) -> None:
    """At a stage's start: fails, naming `{where}.device`, when it asks for a GPU this machine lacks."""
    resolve(value, where)


def _gpu_of_this_process(count: int) -> str:
    """The GPU of this process on a machine with `count` of them: the process holds the lowest slot no other live
    process holds (a lock the kernel drops when a process dies) and uses GPU slot % count, so the worker's SDK
    processes spread evenly over its GPUs. A forked child takes its own slot."""
    if _claim.get("pid") != os.getpid():
        GPU_SLOTS.mkdir(parents=True, exist_ok=True)
        slot = 0
        while True:
            lock = open(GPU_SLOTS / f"{slot}.lock", "a+")  # noqa: SIM115 (held open for the process's life)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                lock.close()
                slot += 1
        _claim.update(pid=os.getpid(), slot=slot, lock=lock)
    return f"cuda:{_claim['slot'] % count}"


def count_rows(device: str, rows: int) -> None:
    """On a worker: `rows` were made on `device` (a Beam counter the stage reads back with `used`)."""
    from apache_beam.metrics import Metrics

    Metrics.counter(METRICS_NAMESPACE, device).inc(rows)


def used(result) -> dict[str, int]:
    """{device: rows made there} of a finished Beam pipeline, from its workers' counters."""
    from apache_beam.metrics.metric import MetricsFilter

    counters = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    found: dict[str, int] = {}
    for counter in counters:
        value = counter.committed if counter.committed is not None else counter.attempted
        found[counter.key.metric.name] = found.get(counter.key.metric.name, 0) + int(value or 0)
    return {device: rows for device, rows in found.items() if rows}
