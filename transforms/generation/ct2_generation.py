"""CPU generation backend (`generate.backend: ctranslate2`): CTranslate2's generator on an int8 copy
of the model (benchmarks/engines.py measured it against the transformers handler).

The copy is converted once per model and quantization and cached next to the model's folder, in
`.ctranslate2/<weights sha256>-<quantization>` (the weights' hash is the one every candidate records,
transforms/io/model_io.py), written to a temporary name and renamed when complete. A changed model
has another hash, so it gets its own copy; nothing else keys the cache.

Reproducibility contract. CTranslate2 draws from one random generator per process, not one per
request, so a candidate's text depends on the batch it is decoded in, not on its seed alone (the
transformers backend's contract). Each batch is put in a canonical order (prompt length, key) and
the generator is seeded from the seeds of the whole batch; so the same model, quantization,
sampling parameters, thread count and the same requests in one batch give the same text, on any
run and in any arrival order. With `generate.resumable`, a shard is one Beam run and its batches
are cut by RunInference, so reruns on the DirectRunner reproduce it; other batching does not.
Temperature 0 is greedy, and then the batch does not matter. int8 weights sample other text than
bfloat16 weights with the same seed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from schemas.reasons import LENGTH, PROMPT_TOO_LONG, STOP
from transforms.generation.hf_generation import Generation, GenerationRequest, SamplingParams

log = logging.getLogger("selfsift.generate")

QUANTIZATION = "int8"  # weights and compute type of the converted copy (int8_float32 on CPUs without int8 kernels)
CACHE_FOLDER = ".ctranslate2"  # beside the model's folder: models/.ctranslate2/<sha256>-<quantization>


def converted_dir(model_dir: str | Path, quantization: str = QUANTIZATION) -> Path:
    """The cached CTranslate2 copy of a local model folder, converting it on a miss."""
    from transforms.io.model_io import model_sha256

    model_dir = Path(model_dir)
    target = model_dir.parent / CACHE_FOLDER / f"{model_sha256(model_dir)}-{quantization}"
    if (target / "model.bin").is_file():
        return target
    from ctranslate2.converters import TransformersConverter

    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        log.info("converting %s to CTranslate2 (%s) in %s", model_dir, quantization, target)
        TransformersConverter(str(model_dir)).convert(str(scratch / "model"), quantization=quantization)
        os.replace(scratch / "model", target)  # another worker may have won the race: its copy is the same
    except OSError:
        if not (target / "model.bin").is_file():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def batch_seed(seeds: Sequence[int]) -> int:
    """One seed for CTranslate2's process-wide generator, from the seeds of every request in the batch."""
    digest = hashlib.sha256(",".join(str(s) for s in seeds).encode()).hexdigest()
    return int(digest[:8], 16)  # its seed is a 32-bit unsigned int


@dataclass
class LoadedGenerator:
    """The converted model's folder, how to run it, and the tokenizer; a class (not a tuple) because
    Beam shares it by weak reference."""

    converted: str
    compute_type: str
    threads: int
    tokenizer: Any

    def seeded(self, seed: int):
        """A generator whose draws start from `seed`. CTranslate2 samples in the generator's own worker
        thread, whose random state is seeded from `set_random_seed` when the thread starts: seeding an
        existing generator changes nothing, so each batch gets a new one (a load of well under a
        second for a model this size, against minutes of decoding)."""
        import ctranslate2

        ctranslate2.set_random_seed(seed)
        return ctranslate2.Generator(self.converted, device="cpu", compute_type=self.compute_type,
                                     intra_threads=self.threads)


def generate_batch(loaded: LoadedGenerator, requests: Sequence[GenerationRequest], sampling: SamplingParams,
                   micro_batch_size: int, max_prompt_tokens: int) -> list[Generation]:
    """Generates for every request, returning results in request order (see the contract above)."""
    tokenizer = loaded.tokenizer
    encoded = [tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in req.messages],
                                             add_generation_prompt=True, tokenize=True, return_dict=False)
               for req in requests]
    encoded = [list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids) for ids in encoded]
    results: list[Optional[Generation]] = [
        Generation("", len(ids), 0, PROMPT_TOO_LONG) if len(ids) > max_prompt_tokens else None for ids in encoded
    ]
    order = sorted((i for i, r in enumerate(results) if r is None), key=lambda i: (len(encoded[i]), requests[i].key))
    if not order:
        return results  # type: ignore[return-value]
    generator = loaded.seeded(batch_seed([requests[i].seed for i in order]))
    greedy = sampling.temperature <= 0
    outputs = generator.generate_batch(
        [tokenizer.convert_ids_to_tokens(encoded[i]) for i in order], max_batch_size=micro_batch_size,
        max_length=sampling.max_new_tokens, include_prompt_in_result=False, end_token=tokenizer.eos_token,
        return_end_token=True, sampling_topk=1 if greedy else sampling.top_k,  # 0: the whole vocabulary
        sampling_topp=1.0 if greedy else sampling.top_p, sampling_temperature=1.0 if greedy else sampling.temperature)
    for i, output in zip(order, outputs):
        tokens = output.sequences_ids[0]
        stopped = bool(tokens) and tokens[-1] == tokenizer.eos_token_id
        completion = tokens[:-1] if stopped else tokens
        results[i] = Generation(text=tokenizer.decode(completion, skip_special_tokens=True),
                                prompt_tokens=len(encoded[i]), completion_tokens=len(completion),
                                finish_reason=STOP if stopped else LENGTH)
    return results  # type: ignore[return-value]


class CTranslate2Handler(ModelHandler[GenerationRequest, PredictionResult, LoadedGenerator]):
    """Converts (once, cached) and loads a local causal LM in CTranslate2 on the CPU, and generates
    for batches of requests with the same `Generation` records as the transformers handler."""

    def __init__(self, model_dir: str, sampling: SamplingParams, *, micro_batch_size: int = 16,
                 max_batch_size: int = 64, max_prompt_tokens: int = 1024, quantization: str = QUANTIZATION,
                 load_policy=None):
        super().__init__()
        self._model_dir = model_dir
        self._sampling = sampling
        self._micro_batch_size = micro_batch_size
        self._max_batch_size = max_batch_size
        self._max_prompt_tokens = max_prompt_tokens
        self._quantization = quantization
        self._load_policy = load_policy

    def load_model(self) -> LoadedGenerator:
        try:
            import ctranslate2
        except ImportError as exc:
            raise ImportError(f"generate.backend: ctranslate2 needs the ctranslate2 package on every worker "
                              f"(pip install -e '.[bench]'; {exc})") from exc
        from transformers import AutoTokenizer

        from transforms.io.model_io import LoadPolicy, check_loadable, local_model_dir

        model_dir = local_model_dir(self._model_dir)
        check_loadable(model_dir, self._load_policy or LoadPolicy())
        converted = converted_dir(model_dir, self._quantization)
        import torch

        loaded = LoadedGenerator(str(converted), self._quantization, torch.get_num_threads(),
                                 AutoTokenizer.from_pretrained(model_dir))
        log.info("generate: %s with CTranslate2 %s (%s from %s, %d threads)", self._model_dir, ctranslate2.__version__,
                 loaded.seeded(0).compute_type, converted, loaded.threads)
        return loaded

    def run_inference(self, batch: Sequence[GenerationRequest], model: LoadedGenerator,
                      inference_args=None) -> Iterable[PredictionResult]:
        outputs = generate_batch(model, batch, self._sampling, self._micro_batch_size, self._max_prompt_tokens)
        return [PredictionResult(req, out, self._model_dir) for req, out in zip(batch, outputs, strict=True)]

    def batch_elements_kwargs(self):
        return {"min_batch_size": self._max_batch_size, "max_batch_size": self._max_batch_size}

    def get_num_bytes(self, batch: Sequence[GenerationRequest]) -> int:
        return sum(len(c) for req in batch for _, c in req.messages)

    def share_model_across_processes(self) -> bool:
        return False
