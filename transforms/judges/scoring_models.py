"""What judge models share: their settings, and a Beam `ModelHandler` base doing prefill-only forward
passes (no generation).

A handler takes `ScoreRequest`s and returns `JudgeResult`s, passed when the score reaches the
judge's threshold. A request a model cannot score (an empty answer, an input over
`max_input_tokens`) gets a result with an `error` instead: it becomes a counted rejection
downstream and never fails the batch.

The model runs on the device `{where}.device` names (transforms/io/devices.py): a forward pass's
inputs go there, its output rows come back to the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.io import devices
from transforms.judges.contract import JudgeResult, JudgeSettings
from transforms.settings import require, require_at_least_one, require_dtype


@dataclass(frozen=True)
class ScoreRequest:
    key: str
    prompt: str
    response: str

    def unscorable(self) -> JudgeResult | None:
        """The error result of a request no judge model can score (an empty answer), else None."""
        return None if self.response.strip() else JudgeResult.failed("empty answer: nothing to judge")


@dataclass
class LoadedScorer:
    """Model and tokenizer together; a class (not a tuple) because Beam shares it by weak reference."""

    model: Any
    tokenizer: Any


def chat_ids(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
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
            logits = model(**batch.to(model.device), **extra).logits.float().cpu()
        for row, i in enumerate(idx):
            yield i, logits[row, -1] if last_only else logits[row]


@dataclass(frozen=True)
class ModelJudgeConfig(JudgeSettings):
    enabled: bool = False  # run this judge (with weight 0 in curate.weights it is recorded and calibrated only)
    model: str = ""  # a local folder with a safetensors model
    threshold: float = 0.5  # passed: score (in [0, 1]) at least this
    max_input_tokens: int = 1024  # longer inputs are rejected as judge_error, never truncated
    micro_batch_size: int = 16  # inputs run through the model together
    max_batch_size: int = 64  # elements RunInference hands the model at once
    dtype: str = "bfloat16"  # inference weights: bfloat16 or float32
    device: str = "auto"  # auto (CUDA when the worker has a GPU, else CPU), cpu, cuda or cuda:N
    # with weight 0 in curate.weights: score only this many candidates, stratified by the verifier's verdict, for
    # calibration (transforms/judges/calibration_sample.py); 0: every candidate. A deciding judge scores every one
    calibration_sample: int = 256

    def is_enabled(self) -> bool:
        return self.enabled

    def pass_threshold(self) -> float | None:
        return self.threshold

    def sample_size(self) -> int:
        return self.calibration_sample

    def runs_local_model(self) -> bool:
        return self.enabled

    def validate(self, where: str) -> None:
        require(not self.enabled or bool(self.model), f"{where}.model must name a model folder when enabled")
        require(0 <= self.threshold <= 1, f"{where}.threshold must be in [0, 1]")
        require_at_least_one(self, where, "max_input_tokens", "micro_batch_size", "max_batch_size")
        require(self.calibration_sample >= 0, f"{where}.calibration_sample must be >= 0 (0: every candidate)")
        require_dtype(self.dtype, where)
        devices.require_device(self.device, where)

    def identity(self) -> dict:
        """What identifies the judge's model (the judge stage's fingerprint and manifest): its folder and weights."""
        from transforms.io.model_io import model_sha256

        return {"model": self.model, "weights_sha256": model_sha256(self.model)}


class ScoringHandler(ModelHandler[ScoreRequest, PredictionResult, LoadedScorer]):
    """Subclasses say how to load the model, encode a request and score the output row."""

    def __init__(self, config: ModelJudgeConfig, load_policy=None, where: str = "judge"):
        from transforms.io.model_io import LoadPolicy

        super().__init__()
        self._config = config
        self._load_policy = load_policy or LoadPolicy()
        self._model_dir = config.model
        self._where = where  # the judge's params section, named in errors

    @classmethod
    def build(cls, config: ModelJudgeConfig, *, load_policy, where: str) -> ScoringHandler:
        """The handler, once its model is known to load and its device to exist (checked here, with the
        param named, rather than inside a Beam worker)."""
        from transforms.io.model_io import check_loadable

        devices.check_available(config.device, where)
        try:
            check_loadable(config.model, load_policy)
        except (FileNotFoundError, ValueError) as exc:
            raise type(exc)(f"{where}.model: {exc}") from exc
        return cls(config, load_policy, where)

    def load_device(self) -> str:
        """The torch device this judge's model loads on (resolved in the worker that loads it)."""
        return devices.resolve(self._config.device, self._where)

    def encode(self, tokenizer, request: ScoreRequest) -> list[int]:
        raise NotImplementedError

    def score(self, output_row, tokenizer) -> tuple[float, dict]:
        raise NotImplementedError

    def last_only(self) -> bool:
        raise NotImplementedError

    def forward(self, model: LoadedScorer, encoded: dict[int, list[int]], batch: Sequence[ScoreRequest]):
        """Yields (index, output row) for every encoded request."""
        return _forward_in_micro_batches(model.model, model.tokenizer, encoded, self._config.micro_batch_size,
                                         self.last_only())

    def run_inference(self, batch: Sequence[ScoreRequest], model: LoadedScorer,
                      inference_args: Optional[dict] = None) -> Iterable[PredictionResult]:
        limit = self._config.max_input_tokens
        results: list[Optional[JudgeResult]] = [None] * len(batch)
        encoded = {}
        for i, request in enumerate(batch):
            if request.unscorable():
                results[i] = request.unscorable()
                continue
            ids = self.encode(model.tokenizer, request)
            if len(ids) > limit:
                results[i] = JudgeResult.failed(f"input too long: {len(ids)} tokens > max_input_tokens {limit}",
                                                {"input_tokens": len(ids)})
            else:
                encoded[i] = ids
        for i, row in self.forward(model, encoded, batch):
            score, detail = self.score(row, model.tokenizer)
            results[i] = JudgeResult(score, score >= self._config.threshold, detail)
        return [PredictionResult(req, res, self._model_dir) for req, res in zip(batch, results, strict=True)]

    def batch_elements_kwargs(self):
        size = self._config.max_batch_size
        return {"min_batch_size": size, "max_batch_size": size}

    def share_model_across_processes(self) -> bool:
        return False
