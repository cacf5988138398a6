"""Named crash points for fault-injection tests.

`SELFSIFT_KILL_AT=<stage>:<point>[#n]` makes the running stage SIGKILL itself the n-th time (default
1st) it reaches that point, as a crash or an OOM kill would. Unset, `reached` does nothing. Points:
`start` (after the stage's lock is taken), `mid_write` (an output file is fully written under its
temporary name, not yet renamed), `before_manifest` (every output written, the manifest not yet) and,
in finetune, `after_checkpoint` (a training checkpoint is saved and marked complete).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "SELFSIFT_KILL_AT"
_stage = ""
_hits: Counter = Counter()


def set_stage(stage: str) -> None:
    global _stage
    _stage = stage
    _hits.clear()


def reached(point: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, nth = spec.partition("#")
    name = f"{_stage}:{point}"
    if name != target:
        return
    _hits[name] += 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
