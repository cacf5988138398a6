"""The dead-letter path of a judge model: failures become error judgments, nothing is dropped."""

import json

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.judges.contract import JudgeResult
from transforms.judges.model_judging import ModelJudge
from transforms.judges.prompt_join import WithPrompts


class ExplodingHandler(ModelHandler):
    """Scores 0.9, names empty answers, and raises for any batch holding the word "boom"."""

    def load_model(self):
        return None

    def run_inference(self, batch, model, inference_args=None):
        if any("boom" in r.response for r in batch):
            raise RuntimeError("kaboom")
        return [PredictionResult(r, JudgeResult.failed("empty answer") if not r.response.strip()
                                 else JudgeResult(0.9, True, {"why": "fake"}), "fake") for r in batch]

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 1}


def test_failed_batches_and_unscorable_candidates_become_error_judgments():
    candidates = [{"candidate_id": "ok", "prompt_id": "p1", "text": "fine"},
                  {"candidate_id": "blows", "prompt_id": "p1", "text": "boom"},
                  {"candidate_id": "empty", "prompt_id": "p1", "text": " "},
                  {"candidate_id": "orphan", "prompt_id": "missing", "text": "x"}]
    with TestPipeline() as p:
        prompts = p | "P" >> beam.Create([{"prompt_id": "p1", "messages": [{"role": "user", "content": "Say something."}]}])
        judged = ((p | "C" >> beam.Create(candidates), prompts) | WithPrompts()
                  | ModelJudge("llm_judge", ExplodingHandler()))
        summary = judged | beam.Map(lambda j: (j["candidate_id"], j["passed"], json.loads(j["detail"]).get("error", "")))
        assert_that(summary, equal_to([
            ("ok", True, ""),
            ("blows", False, "inference failed: RuntimeError('kaboom')"),
            ("empty", False, "empty answer"),
            ("orphan", False, "prompt missing not found"),
        ]))
