"""A reward model judge: a sequence-classification model whose head scores the (prompt, answer) chat."""

from __future__ import annotations

import math

from transforms.judges.contract import JudgeSpec
from transforms.judges.scoring_models import LoadedScorer, ModelJudgeConfig, ScoreRequest, ScoringHandler, chat_ids


class RewardModelHandler(ScoringHandler):
    """A sequence-classification reward model: sigmoid of a single logit, or P(label 1) of two."""

    def load_model(self) -> LoadedScorer:
        from transforms.io.model_io import load_sequence_classifier

        return LoadedScorer(*load_sequence_classifier(self._model_dir, dtype=self._config.dtype, policy=self._load_policy,
                                                      device=self.load_device()))

    def encode(self, tokenizer, request: ScoreRequest) -> list[int]:
        messages = [{"role": "user", "content": request.prompt}, {"role": "assistant", "content": request.response}]
        return chat_ids(tokenizer, messages, add_generation_prompt=False)

    def last_only(self) -> bool:
        return False

    def score(self, output_row, tokenizer) -> tuple[float, dict]:
        return normalized_reward(output_row.tolist())


def normalized_reward(logits: list[float]) -> tuple[float, dict]:
    """Maps a classifier head's logits to [0, 1]: sigmoid for one label, softmax P(label 1) for two."""
    if len(logits) == 1:
        return 1.0 / (1.0 + math.exp(-logits[0])), {"logit": round(logits[0], 4)}
    if len(logits) == 2:
        return 1.0 / (1.0 + math.exp(logits[0] - logits[1])), {"logits": [round(x, 4) for x in logits]}
    raise ValueError(f"a reward model needs 1 or 2 output labels, this one has {len(logits)}")


SPECS = (JudgeSpec("reward_model", "model", RewardModelHandler.build, ModelJudgeConfig),)
