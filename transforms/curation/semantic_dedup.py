"""Semantic dedup (optional): answers whose sentence embeddings (mean-pooled, unit length, e.g.
all-MiniLM-L6-v2) have a cosine similarity at or above a threshold are duplicates; one per cluster
is kept. Scope `within_prompt` compares a prompt's answers with each other; `global` compares every
pair on one worker (blockwise, so memory stays at one block of similarities), which holds every vector:
it is refused for an iteration of more than MAX_GLOBAL_ANSWERS candidates.

An answer longer than MAX_TOKENS tokens is embedded from its first MAX_TOKENS; each one is counted
(notes.TRUNCATED_FOR_EMBEDDING) in the manifest. The model folder may be local or under a remote
storage root (model_io.local_model_dir copies it to each worker). It runs on the device
`curate.semantic_dedup.device` names (transforms/io/devices.py); vectors come back to the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from schemas.reasons import SEMANTIC_DUPLICATE
from transforms.curation.clusters import KeepOnePerCluster
from transforms.curation.notes import NOTES, TRUNCATED_FOR_EMBEDDING
from transforms.curation.rejections import REJECTED
from transforms.curation.steps import SetStep
from transforms.io import devices
from transforms.settings import require

SECTION = "semantic_dedup"  # its params section, under curate:
WHERE = f"curate.{SECTION}"  # as errors name it
BLOCK = 1024
MAX_TOKENS = 256  # longer answers are embedded from their first MAX_TOKENS tokens
MAX_GLOBAL_ANSWERS = 50_000  # scope global gathers this many 384-float vectors on one worker at most (about 77 MB)


@dataclass(frozen=True)
class SemanticDedupConfig:
    """Optional: sentence embeddings; `make embedder` fetches all-MiniLM-L6-v2."""

    enabled: bool = False  # needs the embedding model below
    model: str = ".cache/all-minilm-l6-v2"  # sentence embedding model folder (`make embedder`)
    threshold: float = 0.95  # cosine similarity at which two answers are semantic duplicates
    scope: str = "within_prompt"  # within_prompt, or global (across prompts too)
    batch_size: int = 64  # answers embedded together
    device: str = "auto"  # auto (CUDA when the worker has a GPU, else CPU), cpu, cuda or cuda:N

    def validate(self, where: str) -> None:
        require(-1 <= self.threshold <= 1, f"{where}.threshold must be in [-1, 1]")
        require(self.scope in ("within_prompt", "global"), f"{where}.scope must be 'within_prompt' or 'global'")
        require(self.batch_size >= 1, f"{where}.batch_size must be at least 1")
        devices.require_device(self.device, where)


@dataclass
class LoadedEncoder:
    model: Any
    tokenizer: Any


@dataclass(frozen=True)
class Embedding:
    vector: np.ndarray  # unit length
    truncated: bool  # the text had more tokens than the handler's max_tokens; only those were embedded


class SentenceEmbeddingHandler(ModelHandler[str, PredictionResult, LoadedEncoder]):
    def __init__(self, model_dir: str, batch_size: int, max_tokens: int, load_policy=None, device: str = "auto",
                 where: str = WHERE):
        super().__init__()
        self._model_dir, self._batch_size, self._max_tokens = model_dir, batch_size, max_tokens
        self._load_policy = load_policy
        self._device, self._where = device, where

    def load_model(self) -> LoadedEncoder:
        from transforms.io.model_io import LoadPolicy, load_encoder

        return LoadedEncoder(*load_encoder(self._model_dir, policy=self._load_policy or LoadPolicy(),
                                           device=devices.resolve(self._device, self._where)))

    def run_inference(self, batch: Sequence[str], model: LoadedEncoder, inference_args=None):
        import torch

        texts = list(batch)
        lengths = [len(ids) for ids in model.tokenizer(texts, verbose=False)["input_ids"]]
        encoded = model.tokenizer(texts, padding=True, truncation=True, max_length=self._max_tokens,
                                  return_tensors="pt")
        encoded = encoded.to(model.model.device)
        with torch.inference_mode():
            hidden = model.model(**encoded).last_hidden_state.float()
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        vectors = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return [PredictionResult(text, Embedding(vectors[i], lengths[i] > self._max_tokens), self._model_dir)
                for i, text in enumerate(texts)]

    def batch_elements_kwargs(self):
        return {"min_batch_size": self._batch_size, "max_batch_size": self._batch_size}


def similar_pairs(items: list[tuple[str, np.ndarray]], threshold: float) -> list[tuple[str, str]]:
    """Id pairs whose unit vectors have cosine similarity >= threshold, compared block by block."""
    items = sorted(items, key=lambda item: item[0])
    ids = [i for i, _ in items]
    if len(items) < 2:
        return []
    matrix = np.stack([v for _, v in items]).astype(np.float32)
    pairs = []
    for start in range(0, len(ids), BLOCK):
        sims = matrix[start : start + BLOCK] @ matrix.T
        rows, cols = np.nonzero(sims >= threshold)
        pairs += [(ids[start + r], ids[c]) for r, c in zip(rows.tolist(), cols.tolist()) if start + r < c]
    return pairs


def truncation_note(key: tuple[str, str], result: PredictionResult):
    if result.inference.truncated:  # type: ignore[attr-defined]  # Beam types `inference` as an unbound TypeVar
        yield TRUNCATED_FOR_EMBEDDING, key[1]


class SemanticDedup(beam.PTransform):
    """Rows -> outputs `kept` (one per semantic cluster), `rejected` (semantic_duplicate) and `notes`
    (each answer embedded from its first tokens only)."""

    def __init__(self, params: SemanticDedupConfig, load_policy=None):
        super().__init__()
        devices.check_available(params.device, WHERE)  # when the graph is built, before any work
        self.params, self.load_policy = params, load_policy

    def expand(self, rows):
        params = self.params
        handler = SentenceEmbeddingHandler(params.model, params.batch_size, MAX_TOKENS, self.load_policy, params.device)
        embedded = (
            rows
            | "KeyText" >> beam.Map(lambda r: ((r["prompt_id"], r["candidate_id"]), r["text"]))
            | "Embed" >> RunInference(KeyedModelHandler(handler))
        )
        notes = embedded | "TruncationNotes" >> beam.FlatMapTuple(truncation_note)
        embedded = embedded | "Vector" >> beam.MapTuple(lambda key, result: (key, result.inference.vector))
        if params.scope == "within_prompt":
            groups = (embedded
                      | "ByPrompt" >> beam.MapTuple(lambda key, vec: (key[0], (key[1], vec)))
                      | "GroupByPrompt" >> beam.GroupByKey()
                      | "Items" >> beam.MapTuple(lambda _, items: list(items)))
        else:
            groups = (embedded
                      | "Drop prompt" >> beam.MapTuple(lambda key, vec: (key[1], vec))
                      | "GatherAll" >> beam.combiners.ToList())
        edges = groups | "SimilarPairs" >> beam.FlatMap(similar_pairs, threshold=params.threshold)
        clustered = (rows, edges) | "KeepOnePerCluster" >> KeepOnePerCluster(SEMANTIC_DUPLICATE)
        return {"kept": clustered["kept"], REJECTED: clustered[REJECTED], NOTES: notes}


def check_scope(params: SemanticDedupConfig, candidates: int) -> None:
    """Refuses scope global for more candidates than one worker should compare all pairs of."""
    if params.enabled and params.scope == "global" and candidates > MAX_GLOBAL_ANSWERS:
        raise ValueError(
            f"{WHERE}.scope: global compares every pair of answers on one worker, and this iteration has {candidates:,} "
            f"candidates (at most {MAX_GLOBAL_ANSWERS:,}); use scope within_prompt, which compares a prompt's answers "
            f"and scales out")


def semantic_dedup(plan):
    cfg = plan.config.semantic_dedup
    if not cfg.enabled or plan.config.control == "no_filter":
        return None
    return SemanticDedup(cfg, plan.load_policy)


STEP = SetStep("semantic dedup", (SEMANTIC_DUPLICATE,), semantic_dedup, SemanticDedupConfig, SECTION)
