"""Screen: rows no judge policy can rank. Missing judgments, prompts too long to generate, empty
answers, and judgments a judge could not make."""

from __future__ import annotations

from schemas.reasons import EMPTY, JUDGE_ERROR, PROMPT_TOO_LONG, UNJUDGED
from transforms.curation.steps import RowFilter
from transforms.judges.contract import judgment_error


def usable(plan):
    gating = plan.config.gating()

    def check(row):
        missing = sorted(set(gating) - {j["judge"] for j in row["judgments"]})
        if missing:
            return UNJUDGED, f"no judgment from {', '.join(missing)}"
        if row["finish_reason"] == PROMPT_TOO_LONG:
            return PROMPT_TOO_LONG, f"{row['prompt_tokens']} prompt tokens"
        if not row["text"].strip():
            return EMPTY, ""
        for j in row["judgments"]:
            if error := judgment_error(j):
                return JUDGE_ERROR, f"{j['judge']}: {error}"
        return None

    return check


STEP = RowFilter("screen", (UNJUDGED, PROMPT_TOO_LONG, EMPTY, JUDGE_ERROR), usable)
