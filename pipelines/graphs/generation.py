"""What generating with an iteration's generator needs: its model handler, and the lineage every candidate
records (model, checksum, seed, sampling)."""

from __future__ import annotations

from pipelines.config import Config, iteration_number
from transforms.generation.candidates import Lineage
from transforms.generation.hf_generation import CausalLMHandler, SamplingParams
from transforms.io.model_io import model_sha256


def generation_handler(config: Config, model_dir: str, sampling: SamplingParams):
    cfg = config.generate
    if cfg.backend == "vllm":
        from transforms.generation.vllm_generation import VLLMGenerationHandler

        return VLLMGenerationHandler(model_dir, sampling, max_batch_size=cfg.max_batch_size,
                                     server_kwargs=cfg.vllm_server_kwargs)
    return CausalLMHandler(model_dir, sampling, micro_batch_size=cfg.micro_batch_size,
                           max_batch_size=cfg.max_batch_size, max_prompt_tokens=cfg.max_prompt_tokens,
                           dtype=cfg.dtype, load_policy=config.security.load_policy(), device=cfg.device,
                           where="generate")


def lineage_of(config: Config, iteration: str) -> Lineage:
    cfg, model_dir = config.generate, config.generator_dir(iteration)
    try:
        weights_sha256 = model_sha256(model_dir)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"iterations.{iteration}.generator: {exc}") from exc
    return Lineage(model=model_dir, model_sha256=weights_sha256, iteration=iteration_number(iteration),
                   seed=config.seed, sampling=SamplingParams(cfg.temperature, cfg.top_p, cfg.top_k, cfg.max_new_tokens))
