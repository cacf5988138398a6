"""Preference pairs for DPO: per prompt, the best candidate that passed every filter (chosen)
against its worst scored candidate (rejected), when their scores differ by at least a margin.

Candidates nobody could score (unjudged, judge errors, empty, too-long prompts) and contaminated
ones are in neither role.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas.reasons import CONTAMINATED, EMPTY, JUDGE_ERROR, PROMPT_TOO_LONG, UNJUDGED
from transforms.curation.clusters import preference
from transforms.settings import require

NOT_PAIRABLE = frozenset({UNJUDGED, JUDGE_ERROR, PROMPT_TOO_LONG, EMPTY, CONTAMINATED})


@dataclass(frozen=True)
class PairsConfig:
    """Preference pairs for DPO, written to data/pairs/."""

    enabled: bool = True  # write pairs (DPO trains on them; SFT does not)
    min_margin: float = 0.5  # chosen score minus rejected score

    def validate(self, where: str) -> None:
        require(0 <= self.min_margin <= 1, f"{where}.min_margin must be in [0, 1]")


def preference_pair(prompt_id: str, scored, min_margin: float) -> list[dict]:
    """`scored`: (row, screen reason or None) for each of the prompt's candidates; at most one pair."""
    pool = [(row, reason) for row, reason in scored if reason not in NOT_PAIRABLE]
    passing = sorted((row for row, reason in pool if reason is None), key=preference)
    if not passing:
        return []
    chosen = passing[0]
    others = [row for row, _ in pool if row["candidate_id"] != chosen["candidate_id"]]
    if not others:
        return []
    worst = max(others, key=preference)  # lowest score; ties go to the largest id
    margin = chosen["score"] - worst["score"]
    if margin < min_margin:
        return []
    reason = next(r for row, r in pool if row["candidate_id"] == worst["candidate_id"])
    return [{
        "pair_id": hashlib.sha256(f"{chosen['candidate_id']}|{worst['candidate_id']}".encode()).hexdigest(),
        "prompt_id": prompt_id,
        "prompt": chosen["messages"],
        "chosen": [{"role": "assistant", "content": chosen["text"]}],
        "rejected": [{"role": "assistant", "content": worst["text"]}],
        "chosen_candidate_id": chosen["candidate_id"],
        "rejected_candidate_id": worst["candidate_id"],
        "chosen_score": chosen["score"],
        "rejected_score": worst["score"],
        "margin": margin,
        "rejected_reason": reason or "passed",
    }]
