"""The calibrated judges' verdicts on a labels file's answers (transforms/judges/labels.py), in process.

A custom judge runs its check on each answer, as in the judge stage. A judge model runs its Beam model
handler directly, `load_model()` then `run_inference()` on batches of the handler's batch size: a labels
file is a few hundred rows, not a corpus. As RunInference's dead-letter output does in the stage, a
batch whose inference raises gives each of its answers an error verdict; an answer a judge could not
score is left out of that judge's calibration and counted.
"""

from __future__ import annotations

from typing import Any, Callable

from transforms.judges.contract import JudgeResult, prompt_text
from transforms.judges.labels import LabeledAnswer
from transforms.judges.scoring_models import ScoreRequest


def as_candidate(answer: LabeledAnswer) -> dict:
    """The answer in the shape a check reads (a candidate of the answer's prompt)."""
    return {"candidate_id": f"line-{answer.line}", "prompt_id": answer.prompt["prompt_id"], "text": answer.response}


def check_verdicts(check: Callable[[Any, Any], JudgeResult], answers: list[LabeledAnswer]) -> list[JudgeResult]:
    """`check`: a custom judge's (custom_judge.py); it is given the answer as a partial candidate (as_candidate), of
    which it reads the text, and the prompt record."""
    return [check(as_candidate(answer), answer.prompt) for answer in answers]


def handler_verdicts(handler, answers: list[LabeledAnswer]) -> list[JudgeResult]:
    """`handler`: a judge model's ModelHandler of ScoreRequest -> JudgeResult (scoring_models, endpoint_judge)."""
    requests = [ScoreRequest(f"line-{a.line}", prompt_text(a.prompt), a.response) for a in answers]
    size = handler.batch_elements_kwargs().get("max_batch_size") or len(requests)
    model = handler.load_model()
    verdicts = []
    for start in range(0, len(requests), size):
        batch = requests[start:start + size]
        try:
            verdicts += [prediction.inference for prediction in handler.run_inference(batch, model)]
        except Exception as exc:  # noqa: BLE001 - as the stage's dead letter: the batch is unscored, not fatal
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            verdicts += [JudgeResult.failed(f"inference failed: {message}")] * len(batch)
    return verdicts
