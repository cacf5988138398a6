"""Expands prompts into seeded generation requests and turns model outputs into candidate records."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas.reasons import SAMPLED
from transforms.generation.hf_generation import Generation, GenerationRequest, SamplingParams


@dataclass(frozen=True)
class Lineage:
    """What every candidate of one generate run shares."""

    model: str
    model_sha256: str
    iteration: int
    seed: int
    sampling: SamplingParams


def _digest(*parts) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def candidate_seed(seed: int, iteration: int, prompt_id: str, sample_index: int) -> int:
    return int(_digest(seed, iteration, prompt_id, sample_index)[:15], 16)


def candidate_id(prompt_id: str, model_sha256: str, sample_index: int, seed: int) -> str:
    return _digest(prompt_id, model_sha256, sample_index, seed)[:24]


def expand_prompt(prompt: dict, k: int, lineage: Lineage, start: int = 0, generation_round: int = 1):
    """Yields (meta, request) for K samples of one prompt, sample indexes start.. (a later round continues
    where the earlier ones stopped, so ids and seeds do not depend on the rounds); meta rides along
    through RunInference."""
    messages = tuple((m["role"], m["content"]) for m in prompt["messages"])
    for index in range(start, start + k):
        seed = candidate_seed(lineage.seed, lineage.iteration, prompt["prompt_id"], index)
        cid = candidate_id(prompt["prompt_id"], lineage.model_sha256, index, seed)
        meta = {"candidate_id": cid, "prompt_id": prompt["prompt_id"], "sample_index": index, "seed": seed,
                "generation_round": generation_round}
        yield meta, GenerationRequest(key=cid, messages=messages, seed=seed)


def to_candidate(meta: dict, generation: Generation, lineage: Lineage) -> dict:
    return {
        **meta,
        "text": generation.text,
        "model": lineage.model,
        "model_sha256": lineage.model_sha256,
        "iteration": lineage.iteration,
        "temperature": lineage.sampling.temperature,
        "top_p": lineage.sampling.top_p,
        "max_new_tokens": lineage.sampling.max_new_tokens,
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "finish_reason": generation.finish_reason,
        "origin": SAMPLED,
        "parent_candidate_id": "",
    }
