"""LLM-as-judge: a pointwise rubric, scored as the expected 1-5 rating from next-token probabilities.

The judge never writes free text: the rubric asks for one digit, and the score is the expected
rating under the model's next-token distribution restricted to the rating digits, mapped to [0, 1].

The model runs locally (`model`), or on an OpenAI-compatible server (`endpoint.base_url`): there the
distribution is the reply's top log-probabilities of its one token, and a rating digit not among
them has probability 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from transforms.generation.decoding import runs_custom_loop
from transforms.generation.prefix_reuse import last_logits_sharing_prefixes
from transforms.judges.contract import JudgeSpec
from transforms.judges.endpoint_judge import BadReply, EndpointConfig, EndpointHandler, reply_field
from transforms.judges.scoring_models import LoadedScorer, ModelJudgeConfig, ScoreRequest, ScoringHandler, chat_ids

RATINGS = ("1", "2", "3", "4", "5")

RUBRIC = (
    "You are grading whether a response follows every instruction in a prompt.\n\n"
    "[Prompt]\n{prompt}\n[End of prompt]\n\n"
    "[Response]\n{response}\n[End of response]\n\n"
    "Rate the response from 1 to 5:\n"
    "1 = ignores the instructions, 2 = follows few of them, 3 = follows about half, "
    "4 = follows almost all, 5 = follows every instruction exactly.\n"
    "Reply with a single digit."
)


def rubric_messages(prompt: str, response: str) -> list[dict]:
    return [{"role": "user", "content": RUBRIC.format(prompt=prompt, response=response)}]


def rating_token_ids(tokenizer) -> list[int]:
    """The token id of each rating digit; refuses a tokenizer that splits a digit."""
    ids = []
    for rating in RATINGS:
        encoded = tokenizer.encode(rating, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"judge tokenizer encodes rating {rating!r} as {len(encoded)} tokens; need exactly 1")
        ids.append(encoded[0])
    return ids


def expected_rating(rating_logits: list[float]) -> tuple[float, list[float]]:
    """Softmax over the rating tokens' logits (or log-probabilities; -inf: no probability); returns (expected
    rating mapped to [0, 1], probabilities)."""
    if len(rating_logits) != len(RATINGS):
        raise ValueError(f"expected {len(RATINGS)} rating logits, got {len(rating_logits)}")
    if any(math.isnan(x) or x == math.inf for x in rating_logits) or max(rating_logits) == -math.inf:
        raise ValueError(f"rating logits must be finite or -inf, at least one finite, got {rating_logits}")
    top = max(rating_logits)
    weights = [math.exp(x - top) for x in rating_logits]
    total = sum(weights)
    probabilities = [w / total for w in weights]
    expected = sum(p * (i + 1) for i, p in enumerate(probabilities))
    return (expected - 1) / (len(RATINGS) - 1), probabilities


def rated(rating_logits: list[float]) -> tuple[float, dict]:
    """(score, detail) of a judgment from the rating digits' logits."""
    score, probabilities = expected_rating(rating_logits)
    return score, {"rating_probabilities": [round(p, 4) for p in probabilities]}


def rating_logprobs(alternatives: list) -> list[float]:
    """The log-probability of each rating among a token's top alternatives (`{"token", "logprob"}` entries, as
    OpenAI-compatible servers list them); -inf for a rating not among them. A token that is a digit with
    whitespace around it counts as that digit, its probability added to the bare digit's."""
    found: dict[str, list[float]] = {}
    for alternative in alternatives:
        token = alternative.get("token") if isinstance(alternative, dict) else None
        logprob = alternative.get("logprob") if isinstance(alternative, dict) else None
        if not isinstance(token, str) or isinstance(logprob, bool) or not isinstance(logprob, (int, float)):
            raise BadReply(f"top_logprobs entry {str(alternative)[:80]} is not a {{token, logprob}} pair")
        if token.strip() in RATINGS:
            found.setdefault(token.strip(), []).append(float(logprob))
    if not found:
        tokens = ", ".join(repr(a["token"]) for a in alternatives[:5])
        raise BadReply(f"no rating digit 1-5 among the top {len(alternatives)} tokens ({tokens})")
    return [_logsumexp(found[rating]) if rating in found else -math.inf for rating in RATINGS]


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top if len(values) == 1 or top == -math.inf else top + math.log(sum(math.exp(v - top) for v in values))


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


class RatingJudgeHandler(ScoringHandler):
    """LLM-as-judge: the expected rubric rating, read from next-token probabilities of the rating digits."""

    def load_model(self) -> LoadedScorer:
        from transforms.io.model_io import load_causal_lm

        model, tokenizer = load_causal_lm(self._model_dir, dtype=self._config.dtype, policy=self._load_policy,
                                          device=self.load_device())
        rating_token_ids(tokenizer)  # fails at load, not mid-batch, when a rating is not one token
        return LoadedScorer(model, tokenizer)

    def encode(self, tokenizer, request: ScoreRequest) -> list[int]:
        return chat_ids(tokenizer, rubric_messages(request.prompt, request.response), add_generation_prompt=True)

    def last_only(self) -> bool:
        return True

    def forward(self, model: LoadedScorer, encoded: dict[int, list[int]], batch: Sequence[ScoreRequest]):
        if self._config.micro_batch_size != 1 or not runs_custom_loop(model.model):  # cache cut back per layer
            return super().forward(model, encoded, batch)
        prefixes = {i: rubric_prefix_length(model.tokenizer, batch[i], ids) for i, ids in encoded.items()}
        return last_logits_sharing_prefixes(model.model, encoded, prefixes)

    def score(self, output_row, tokenizer) -> tuple[float, dict]:
        return rated(output_row[list(rating_token_ids(tokenizer))].tolist())


class RatingEndpointHandler(EndpointHandler):
    """The same judge on an OpenAI-compatible server: one greedy token, rated from its top log-probabilities."""

    def payload(self, request: ScoreRequest) -> dict:
        return {"messages": rubric_messages(request.prompt, request.response), "max_tokens": 1, "temperature": 0,
                "logprobs": True, "top_logprobs": self._endpoint.top_logprobs}

    def score(self, reply: dict) -> tuple[float, dict]:
        alternatives = reply_field(reply, "choices", 0, "logprobs", "content", 0, "top_logprobs")
        if not isinstance(alternatives, list):
            raise BadReply(f"reply's top_logprobs is a {type(alternatives).__name__}, not a list")
        return rated(rating_logprobs(alternatives))


@dataclass(frozen=True)
class LlmJudgeConfig(ModelJudgeConfig):
    enabled: bool = True
    model: str = "models/base"  # any local safetensors causal LM, or a Hub model hf://OWNER/NAME@COMMIT
    # 1: a prompt's rubric prefix is computed once and each answer runs unpadded, so a score never
    # depends on its batch; > 1: padded passes, no prefix reuse
    micro_batch_size: int = 1
    # an OpenAI-compatible server that runs the judge instead of the local `model`. There the server's context
    # limit stands in for max_input_tokens (a prompt over it is a judge_error), and micro_batch_size and dtype
    # do not apply
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)

    def validate(self, where: str) -> None:
        super().validate(where)
        self.endpoint.validate(f"{where}.endpoint")

    def identity(self) -> dict:
        return self.endpoint.identity() if self.endpoint.enabled else super().identity()

    def runs_local_model(self) -> bool:
        return self.enabled and not self.endpoint.enabled


def build(config: LlmJudgeConfig, *, load_policy, where: str):
    """The judge's Beam handler: on the server when `endpoint.base_url` is set, else on the local model (each
    checked before the stage starts, naming its param)."""
    if config.endpoint.enabled:
        return RatingEndpointHandler.build(config, config.endpoint, where=f"{where}.endpoint")
    return RatingJudgeHandler.build(config, load_policy=load_policy, where=where)


SPECS = (JudgeSpec("llm_judge", "model", build, LlmJudgeConfig),)
