"""GPU generation backend (`generate.backend: vllm`): Beam's own vLLM handler.

`apache_beam.ml.inference.vllm_inference.VLLMChatModelHandler` starts one vLLM OpenAI-compatible
server per worker and loads the model into it; this handler reuses that server and sends every
request concurrently with its own seed, so the server batches them continuously. It returns the same
`Generation` records as the transformers handler. The server applies the model's own chat template.

vLLM's sampler is not the transformers path's Gumbel-max sampler: the same seed gives a different
(equally distributed) sample, so candidates from the two backends are not byte-identical.
Needs `pip install vllm openai` on the workers (docs/dataflow.md).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from schemas.reasons import LENGTH, PROMPT_TOO_LONG, STOP
from transforms.generation.hf_generation import Generation, GenerationRequest, SamplingParams


def _vllm_inference():
    try:
        from apache_beam.ml.inference import vllm_inference
    except ImportError as exc:
        raise ImportError(f"generate.backend: vllm needs the vllm and openai packages on every worker ({exc})") from exc
    return vllm_inference


class VLLMGenerationHandler(ModelHandler[GenerationRequest, PredictionResult, Any]):
    def __init__(self, model_dir: str, sampling: SamplingParams, *, max_batch_size: int = 64,
                 server_kwargs: Optional[dict[str, str]] = None):
        super().__init__()
        self._model_dir, self._sampling, self._max_batch_size = model_dir, sampling, max_batch_size
        self._server_kwargs = dict(server_kwargs or {})

    def load_model(self):
        from transforms.io.model_io import local_model_dir

        vllm_inference = _vllm_inference()
        self._served_name = local_model_dir(self._model_dir)
        return vllm_inference.VLLMChatModelHandler(self._served_name, vllm_server_kwargs=self._server_kwargs).load_model()

    def run_inference(self, batch: Sequence[GenerationRequest], model, inference_args=None) -> Iterable[PredictionResult]:
        import asyncio

        client = _vllm_inference().getAsyncVLLMClient(model.get_server_port())
        outputs = asyncio.run(self._generate_all(client, batch))
        return [PredictionResult(req, out, self._model_dir) for req, out in zip(batch, outputs, strict=True)]

    async def _generate_all(self, client, batch):
        import asyncio

        async with client:
            return await asyncio.gather(*(self._generate(client, req) for req in batch))

    async def _generate(self, client, request: GenerationRequest) -> Generation:
        import openai

        s = self._sampling
        try:
            response = await client.chat.completions.create(
                model=getattr(self, "_served_name", self._model_dir),
                messages=[{"role": role, "content": content} for role, content in request.messages],
                max_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p, seed=request.seed,
                extra_body={"top_k": s.top_k or -1},
            )
        except openai.BadRequestError as exc:
            if "context length" not in str(exc):
                raise
            return Generation(text="", prompt_tokens=0, completion_tokens=0, finish_reason=PROMPT_TOO_LONG)
        choice = response.choices[0]
        return Generation(text=choice.message.content or "", prompt_tokens=response.usage.prompt_tokens,
                          completion_tokens=response.usage.completion_tokens,
                          finish_reason=LENGTH if choice.finish_reason == "length" else STOP)

    def batch_elements_kwargs(self):
        return {"min_batch_size": self._max_batch_size, "max_batch_size": self._max_batch_size}

    def share_model_across_processes(self) -> bool:
        return False
