"""Control sample (ablations only, `curate.control`): in place of the judges and selection, keep a
seeded uniform random sample of `curate.control_rows[iteration]` rows; the rest are not sampled."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import apache_beam as beam

from schemas.reasons import NOT_SAMPLED
from transforms.curation.rejections import REJECTED, rejected
from transforms.curation.steps import SetStep
from transforms.settings import require

CONTROLS = ("none", "no_filter", "random_judge")


@dataclass(frozen=True)
class ControlConfig:
    # ablations (docs/results.md): "no_filter" keeps a random sample of all usable candidates (no
    # heuristics, judges, near/semantic dedup or selection); "random_judge" applies heuristics and
    # dedup, then keeps a random sample in place of the judges and selection
    control: str = "none"
    control_rows: dict[str, int] = field(default_factory=dict)  # rows each control keeps per iteration, e.g. {iter-001: 86}

    def validate(self, where: str) -> None:
        require(self.control in CONTROLS, f"{where}.control must be one of {', '.join(CONTROLS)}")
        for name, rows in self.control_rows.items():
            require(rows >= 1, f"{where}.control_rows.{name} must be at least 1")


def sample_key(seed: int, candidate_id: str) -> str:
    return hashlib.sha256(f"{seed}|{candidate_id}".encode()).hexdigest()


def random_sample(rows: list[dict], rows_wanted: int, seed: int):
    """Keeps `rows_wanted` rows chosen uniformly at random (fixed by the seed); the rest are not sampled."""
    rows = sorted(rows, key=lambda r: sample_key(seed, r["candidate_id"]))
    yield from rows[:rows_wanted]
    for row in rows[rows_wanted:]:
        yield rejected(row, NOT_SAMPLED, f"outside a random sample of {rows_wanted} of {len(rows)}")


class ControlSample(beam.PTransform):
    def __init__(self, rows_wanted: int, seed: int):
        super().__init__()
        self.rows_wanted, self.seed = rows_wanted, seed

    def expand(self, rows):
        out = (
            rows
            | "GatherPool" >> beam.combiners.ToList()
            | "RandomSample" >> beam.FlatMap(random_sample, self.rows_wanted, self.seed).with_outputs(REJECTED, main="kept")
        )
        return out.kept, out[REJECTED]


def control_sample(plan):
    return ControlSample(plan.control_rows, plan.seed) if plan.config.control != "none" else None


STEP = SetStep("control sample", (NOT_SAMPLED,), control_sample)
