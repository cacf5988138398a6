"""Beam `ModelHandler`s for judge models: prefill-only forward passes, no generation.

Both handlers take `ScoreRequest`s and return `ModelScore`s. A request a model cannot score (an
empty answer, an input over `max_input_tokens`) gets a `ModelScore` with an `error` instead of a
score: it becomes a counted rejection downstream and never fails the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.llm_judge import RUBRIC, expected_rating, rating_token_ids, rubric_messages
from transforms.prefix_reuse import last_logits_sharing_prefixes


@dataclass(frozen=True)
class ScoreRequest:
    key: str
    prompt: str
    response: str


@dataclass(frozen=True)
class ModelScore:
    score: float  # in [0, 1]; meaningless when `error` is set
    detail: dict
    error: str = ""


@dataclass
class LoadedScorer:
    """Model and tokenizer together; a class (not a tuple) because Beam shares it by weak reference."""

    model: Any
    tokenizer: Any


def _chat_ids(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True,
                                        return_dict=False)
    return list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids)


def _forward_in_micro_batches(model, tokenizer, encoded: dict[int, list[int]], micro_batch_size: int, last_only: bool):
    """Runs left-padded forward passes, shortest inputs together; yields (index, output row)."""
    import torch

    order = sorted(encoded, key=lambda i: (len(encoded[i]), i))
    for start in range(0, len(order), micro_batch_size):
        idx = order[start : start + micro_batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, padding=True, return_tensors="pt")
        with torch.inference_mode():
            extra = {"logits_to_keep": 1} if last_only else {}
            logits = model(**batch, **extra).logits.float()
        for row, i in enumerate(idx):
            yield i, logits[row, -1] if last_only else logits[row]


class _ScoringHandler(ModelHandler[ScoreRequest, PredictionResult, LoadedScorer]):
    def __init__(self, model_dir: str, *, max_input_tokens: int, micro_batch_size: int, max_batch_size: int,
                 dtype: str, load_policy=None):
        from transforms.model_io import LoadPolicy

        super().__init__()
        self._load_policy = load_policy or LoadPolicy()
        self._model_dir = model_dir
        self._max_input_tokens = max_input_tokens
        self._micro_batch_size = micro_batch_size
        self._max_batch_size = max_batch_size
        self._dtype = dtype

    def encode(self, tokenizer, request: ScoreRequest) -> list[int]:
        raise NotImplementedError

    def score(self, output_row, tokenizer) -> ModelScore:
        raise NotImplementedError

    def last_only(self) -> bool:
        raise NotImplementedError

    def forward(self, model: LoadedScorer, encoded: dict[int, list[int]], batch: Sequence[ScoreRequest]):
        """Yields (index, output row) for every encoded request."""
        return _forward_in_micro_batches(model.model, model.tokenizer, encoded, self._micro_batch_size,
                                         self.last_only())

    def run_inference(self, batch: Sequence[ScoreRequest], model: LoadedScorer,
                      inference_args: Optional[dict] = None) -> Iterable[PredictionResult]:
        results: list[Optional[ModelScore]] = [None] * len(batch)
        encoded = {}
        for i, request in enumerate(batch):
            if not request.response.strip():
                results[i] = ModelScore(0.0, {}, error="empty answer: nothing to judge")
                continue
            ids = self.encode(model.tokenizer, request)
            if len(ids) > self._max_input_tokens:
                results[i] = ModelScore(0.0, {"input_tokens": len(ids)},
                                        error=f"input too long: {len(ids)} tokens > max_input_tokens "
                                              f"{self._max_input_tokens}")
            else:
                encoded[i] = ids
        for i, row in self.forward(model, encoded, batch):
            results[i] = self.score(row, model.tokenizer)
        return [PredictionResult(req, res, self._model_dir) for req, res in zip(batch, results, strict=True)]

    def batch_elements_kwargs(self):
        return {"min_batch_size": self._max_batch_size, "max_batch_size": self._max_batch_size}

    def share_model_across_processes(self) -> bool:
        return False


def rubric_prefix_length(tokenizer, request: ScoreRequest, ids: list[int]) -> int:
    """How many of `ids` (the rubric chat for this request) come before the response: the part the
    K candidates of one prompt share. 0 when the tokenization does not split there cleanly."""
    text = tokenizer.apply_chat_template(rubric_messages(request.prompt, request.response), add_generation_prompt=True,
                                         tokenize=False)
    before = RUBRIC.split("{response}")[0].format(prompt=request.prompt)
    at = text.find(before)
    if at < 0:
        return 0
    prefix = tokenizer(text[: at + len(before)], add_special_tokens=False)["input_ids"]
    return len(prefix) if ids[: len(prefix)] == prefix else 0


class RatingJudgeHandler(_ScoringHandler):
    """LLM-as-judge: the expected rubric rating, read from next-token probabilities of the rating digits."""

    def load_model(self) -> LoadedScorer:
        from transforms.model_io import load_causal_lm

        model, tokenizer = load_causal_lm(self._model_dir, dtype=self._dtype, policy=self._load_policy)
        rating_token_ids(tokenizer)  # fails at load, not mid-batch, when a rating is not one token
        return LoadedScorer(model, tokenizer)

    def encode(self, tokenizer, request: ScoreRequest) -> list[int]:
        return _chat_ids(tokenizer, rubric_messages(request.prompt, request.response), add_generation_prompt=True)

    def last_only(self) -> bool:
        return True

    def forward(self, model: LoadedScorer, encoded: dict[int, list[int]], batch: Sequence[ScoreRequest]):
        if self._micro_batch_size != 1:
            return super().forward(model, encoded, batch)
        prefixes = {i: rubric_prefix_length(model.tokenizer, batch[i], ids) for i, ids in encoded.items()}
        return last_logits_sharing_prefixes(model.model, encoded, prefixes)

    def score(self, output_row, tokenizer) -> ModelScore:
        rating_logits = output_row[list(rating_token_ids(tokenizer))].tolist()
        score, probabilities = expected_rating(rating_logits)
        return ModelScore(score, {"rating_probabilities": [round(p, 4) for p in probabilities]})


class RewardModelHandler(_ScoringHandler):
    """A sequence-classification reward model: sigmoid of a single logit, or P(label 1) of two."""

    def load_model(self) -> LoadedScorer:
        from transforms.model_io import load_sequence_classifier

        return LoadedScorer(*load_sequence_classifier(self._model_dir, dtype=self._dtype, policy=self._load_policy))

    def encode(self, tokenizer, request: ScoreRequest) -> list[int]:
        messages = [{"role": "user", "content": request.prompt}, {"role": "assistant", "content": request.response}]
        return _chat_ids(tokenizer, messages, add_generation_prompt=False)

    def last_only(self) -> bool:
        return False

    def score(self, output_row, tokenizer) -> ModelScore:
        return ModelScore(*normalized_reward(output_row.tolist()))


def normalized_reward(logits: list[float]) -> tuple[float, dict]:
    """Maps a classifier head's logits to [0, 1]: sigmoid for one label, softmax P(label 1) for two."""
    import math

    if len(logits) == 1:
        return 1.0 / (1.0 + math.exp(-logits[0])), {"logit": round(logits[0], 4)}
    if len(logits) == 2:
        return 1.0 / (1.0 + math.exp(logits[0] - logits[1])), {"logits": [round(x, 4) for x in logits]}
    raise ValueError(f"a reward model needs 1 or 2 output labels, this one has {len(logits)}")
