"""A judge model as a Beam composite: candidates in, one judgment per candidate out.

RunInference runs the model (loaded once per worker, fixed-size batches). Unscorable candidates come
back as error judgments from the handler; a batch whose inference raises goes to RunInference's
dead-letter output and every candidate in it becomes an error judgment. Nothing is dropped.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from schemas.records import Judgment
from transforms.judges.contract import JudgeResult, prompt_text
from transforms.judges.scoring_models import ScoreRequest


def _requests(candidate: dict, prompt: dict | None):
    cid = candidate["candidate_id"]
    if prompt is None:
        yield beam.pvalue.TaggedOutput("unscorable", (cid, f"prompt {candidate['prompt_id']} not found"))
    else:
        yield cid, ScoreRequest(cid, prompt_text(prompt), candidate["text"])


def _failed_batch(judge: str, failed) -> list[Judgment]:
    batch, (_type, exc_repr, _traceback) = failed  # the form of Beam's ParDo dead-letter output
    message = " ".join(str(exc_repr).split())[:300]
    return [JudgeResult.failed(f"inference failed: {message}").record(candidate_id, judge) for candidate_id, _ in batch]


class ModelJudge(beam.PTransform):
    """(candidate, its prompt or None) pairs in (prompt_join.WithPrompts); `handler` maps ScoreRequests to
    JudgeResults (see scoring_models.ScoringHandler)."""

    def __init__(self, judge: str, handler):
        super().__init__()
        self.judge, self.handler = judge, handler

    def expand(self, candidates):
        judge = self.judge
        requests = candidates | "Request" >> beam.FlatMapTuple(_requests).with_outputs(
            "unscorable", main="ok")
        results, dead_letter = (
            requests.ok | "Score" >> RunInference(KeyedModelHandler(self.handler)).with_exception_handling())
        return (
            results | "ToJudgment" >> beam.MapTuple(lambda cid, r: r.inference.record(cid, judge)),
            dead_letter.failed_inferences | "FailedBatches" >> beam.FlatMap(lambda f: _failed_batch(judge, f)),
            requests.unscorable | "NoPrompt" >> beam.MapTuple(lambda cid, e: JudgeResult.failed(e).record(cid, judge)),
        ) | "AllJudgments" >> beam.Flatten()
