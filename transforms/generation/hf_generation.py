"""A Beam `ModelHandler` around transformers generation.

Each request carries its own seed. Sampling adds Gumbel noise drawn from a per-row generator to
the temperature/top-p/top-k filtered logits and takes the argmax, which is an exact draw from the
filtered softmax; so a candidate's text depends on its seed, not on which batch it landed in.
Temperature 0 is greedy decoding. A batch is sorted by prompt length and cut into micro-batches,
so rows padded together have similar lengths. The model decodes with the custom loop
(decoding.py) where its architecture is verified for it, else with transformers' `generate`
(fallback_generation.py); the handler logs which when it loads the model, on the device its
`device` setting resolves to (transforms/io/devices.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Iterable, Optional, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from schemas.reasons import LENGTH, PROMPT_TOO_LONG, STOP
from transforms.generation.decoding import VERIFIED_ARCHITECTURES, decode, runs_custom_loop
from transforms.generation.fallback_generation import fallback_decode
from transforms.io import devices

log = logging.getLogger("selfsift.generate")


@dataclass(frozen=True)
class SamplingParams:
    temperature: float
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128


@dataclass(frozen=True)
class GenerationRequest:
    key: str
    messages: tuple  # ((role, content), ...): hashable, picklable
    seed: int


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # one of schemas.reasons.FINISH_REASONS


@dataclass
class LoadedModel:
    """Model and tokenizer together; a class (not a tuple) because Beam shares it by weak reference."""

    model: Any
    tokenizer: Any


class RowSampler:
    """Next-token choice for a batch whose rows can leave it (see `decoding.decode`).

    Temperature, then top-k, then top-p (transformers' order and rule: a token is kept while the
    probability mass ranked above it is below top_p), then an exact draw from the renormalised
    distribution by the Gumbel-max trick, with noise from the row's own generator (on `device`, the
    model's: the same seed draws differently on a GPU than on the CPU). The nucleus is
    looked for among the NUCLEUS_CANDIDATES most likely tokens (a top-k, not a sort of the whole
    vocabulary, which cost a fifth of the stage's time); a row whose nucleus is larger falls back
    to transformers' full-vocabulary warper. Temperature 0 is greedy.
    """

    NUCLEUS_CANDIDATES = 1024

    def __init__(self, sampling: SamplingParams, seeds: Sequence[int], device="cpu"):
        import torch

        self.sampling = sampling
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def keep_rows(self, rows: Sequence[int]) -> None:
        self.generators = [self.generators[r] for r in rows]

    def _gumbel(self, row: int, n: int):
        import torch

        generator = self.generators[row]
        uniform = torch.rand(n, generator=generator, device=generator.device).clamp_(min=1e-20, max=1.0 - 1e-7)
        return -torch.log(-torch.log(uniform))

    def _draw(self, scores, index=None):
        """One token per row from softmax(scores); `index` maps candidate columns to token ids."""
        import torch

        noise = torch.stack([self._gumbel(r, scores.shape[-1]) for r in range(scores.shape[0])])
        choice = (scores + noise).argmax(-1)
        return choice if index is None else index.gather(-1, choice[:, None]).squeeze(-1)

    def __call__(self, logits):
        import torch
        from transformers import TopKLogitsWarper, TopPLogitsWarper

        scores = logits.float()
        sampling = self.sampling
        if sampling.temperature <= 0:
            return scores.argmax(-1)
        scores = scores / sampling.temperature
        if sampling.top_k > 0:
            scores = TopKLogitsWarper(sampling.top_k)(None, scores)
        if sampling.top_p >= 1.0:
            return self._draw(scores)
        values, index = scores.topk(min(self.NUCLEUS_CANDIDATES, scores.shape[-1]), dim=-1)
        probs = (values - torch.logsumexp(scores, dim=-1, keepdim=True)).exp()
        cumulative = probs.cumsum(-1)
        values = values.masked_fill(cumulative - probs >= sampling.top_p, float("-inf"))
        found = cumulative[:, -1] >= sampling.top_p
        if bool(found.all()):
            return self._draw(values, index)
        tokens = torch.empty(scores.shape[0], dtype=torch.long, device=scores.device)
        for row in range(scores.shape[0]):  # rare: a nucleus wider than the candidates
            if found[row]:
                tokens[row] = index[row, (values[row] + self._gumbel(row, values.shape[-1])).argmax()]
            else:
                full = TopPLogitsWarper(sampling.top_p)(None, scores[row : row + 1])[0]
                tokens[row] = (full + self._gumbel(row, full.shape[-1])).argmax()
        return tokens


def generate_batch(model, tokenizer, requests: Sequence[GenerationRequest], sampling: SamplingParams,
                   micro_batch_size: int, max_prompt_tokens: int) -> list[Generation]:
    """Generates for every request, returning results in request order."""
    encoded = [
        tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in req.messages],
                                      add_generation_prompt=True, tokenize=True, return_dict=False)
        for req in requests
    ]
    encoded = [list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids) for ids in encoded]
    results: list[Optional[Generation]] = [
        Generation("", len(ids), 0, PROMPT_TOO_LONG) if len(ids) > max_prompt_tokens else None for ids in encoded
    ]
    order = sorted((i for i, r in enumerate(results) if r is None), key=lambda i: (len(encoded[i]), requests[i].key))
    eos_ids = {tokenizer.eos_token_id}
    custom_loop = runs_custom_loop(model)
    sampler = partial(RowSampler, sampling, device=model.device)
    for start in range(0, len(order), micro_batch_size):
        idx = order[start : start + micro_batch_size]
        prompts, seeds = [encoded[i] for i in idx], [requests[i].seed for i in idx]
        if custom_loop:
            new_tokens = decode(model, prompts, sampler(seeds), sampling.max_new_tokens, eos_ids,
                                tokenizer.pad_token_id)
        else:
            new_tokens = fallback_decode(model, prompts, seeds, sampler, sampling.temperature <= 0,
                                         sampling.max_new_tokens, eos_ids, tokenizer.pad_token_id)
        for i, tokens in zip(idx, new_tokens):
            stop_at = next((p for p, t in enumerate(tokens) if t in eos_ids), None)
            completion = tokens if stop_at is None else tokens[:stop_at]
            results[i] = Generation(
                text=tokenizer.decode(completion, skip_special_tokens=True),
                prompt_tokens=len(encoded[i]),
                completion_tokens=len(completion),
                finish_reason=LENGTH if stop_at is None else STOP,
            )
    return results  # type: ignore[return-value]


class CausalLMHandler(ModelHandler[GenerationRequest, PredictionResult, LoadedModel]):
    """Loads a local causal LM once per worker, on the device `{where}.device` names, and generates
    for batches of requests."""

    def __init__(self, model_dir: str, sampling: SamplingParams, *, micro_batch_size: int = 16,
                 max_batch_size: int = 64, max_prompt_tokens: int = 1024, dtype: str = "float32",
                 load_policy=None, device: str = "auto", where: str = "generate"):
        super().__init__()
        self._device, self._where = device, where
        self._load_policy = load_policy
        self._model_dir = model_dir
        self._sampling = sampling
        self._micro_batch_size = micro_batch_size
        self._max_batch_size = max_batch_size
        self._max_prompt_tokens = max_prompt_tokens
        self._dtype = dtype
        self._done = 0  # sequences generated by this copy of the handler, for progress logs

    def load_model(self):
        from transforms.io.model_io import LoadPolicy, load_causal_lm

        device = devices.resolve(self._device, self._where)
        loaded = LoadedModel(*load_causal_lm(self._model_dir, dtype=self._dtype,
                                             policy=self._load_policy or LoadPolicy(), device=device))
        architecture = loaded.model.config.model_type
        if runs_custom_loop(loaded.model):
            log.info("%s: %s (%s) on %s, custom decode loop", self._where, self._model_dir, architecture, device)
        else:
            log.info("%s: %s (%s) on %s: %s is not an architecture the custom decode loop is verified for (%s), "
                     "so it generates with transformers' model.generate", self._where, self._model_dir,
                     architecture, device, architecture, ", ".join(VERIFIED_ARCHITECTURES))
        return loaded

    def run_inference(self, batch: Sequence[GenerationRequest], model, inference_args=None) -> Iterable[PredictionResult]:
        start = time.perf_counter()
        outputs = generate_batch(model.model, model.tokenizer, batch, self._sampling, self._micro_batch_size,
                                 self._max_prompt_tokens)
        seconds = time.perf_counter() - start
        devices.count_rows(str(model.model.device), len(batch))
        tokens = sum(o.completion_tokens for o in outputs)
        self._done += len(batch)
        log.info("generated %d sequences (%d so far in this worker): %d tokens in %.1f s, %.0f tokens/s",
                 len(batch), self._done, tokens, seconds, tokens / max(seconds, 1e-9))
        return [PredictionResult(req, out, self._model_dir) for req, out in zip(batch, outputs, strict=True)]

    def batch_elements_kwargs(self):
        # Fixed-size batches: Beam's adaptive default aims at ~1 s batches, which for generation
        # means batches of one or two and no batching speed-up at all.
        return {"min_batch_size": self._max_batch_size, "max_batch_size": self._max_batch_size}

    def get_num_bytes(self, batch: Sequence[GenerationRequest]) -> int:
        return sum(len(c) for req in batch for _, c in req.messages)

    def share_model_across_processes(self) -> bool:
        return False
