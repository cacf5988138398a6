"""A judge model as a Beam composite: candidates in, one judgment per candidate out.

RunInference runs the model (loaded once per worker, fixed-size batches). Unscorable candidates come
back as error judgments from the handler; a batch whose inference raises goes to RunInference's
dead-letter output and every candidate in it becomes an error judgment. Nothing is dropped.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from transforms.judging import error_judgment, judgment, prompt_text
from transforms.scoring_models import ScoreRequest


def _requests(candidate: dict, prompts: dict):
    cid, prompt = candidate["candidate_id"], prompts.get(candidate["prompt_id"])
    if prompt is None:
        yield beam.pvalue.TaggedOutput("unscorable", (cid, f"prompt {candidate['prompt_id']} not found"))
    else:
        yield cid, ScoreRequest(cid, prompt_text(prompt), candidate["text"])


def _judgment(judge: str, threshold: float, candidate_id: str, result) -> dict:
    scored = result.inference
    if scored.error:
        return error_judgment(candidate_id, judge, scored.error)
    return judgment(candidate_id, judge, scored.score, scored.score >= threshold, scored.detail)


def _failed_batch(judge: str, failed) -> list[dict]:
    batch, (_type, exc_repr, _traceback) = failed  # the form of Beam's ParDo dead-letter output
    message = " ".join(str(exc_repr).split())[:300]
    return [error_judgment(candidate_id, judge, f"inference failed: {message}") for candidate_id, _ in batch]


class ModelJudge(beam.PTransform):
    def __init__(self, judge: str, handler, threshold: float, prompts):
        super().__init__()
        self.judge, self.handler, self.threshold, self.prompts = judge, handler, threshold, prompts

    def expand(self, candidates):
        judge, threshold = self.judge, self.threshold
        requests = candidates | "Request" >> beam.FlatMap(_requests, prompts=self.prompts).with_outputs(
            "unscorable", main="ok")
        results, dead_letter = (
            requests.ok | "Score" >> RunInference(KeyedModelHandler(self.handler)).with_exception_handling())
        return (
            results | "ToJudgment" >> beam.MapTuple(lambda cid, r: _judgment(judge, threshold, cid, r)),
            dead_letter.failed_inferences | "FailedBatches" >> beam.FlatMap(lambda f: _failed_batch(judge, f)),
            requests.unscorable | "NoPrompt" >> beam.MapTuple(lambda cid, e: error_judgment(cid, judge, e)),
        ) | "AllJudgments" >> beam.Flatten()
