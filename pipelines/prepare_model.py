"""Stage `prepare-model`: the base model as float32 safetensors under models/base, checksum verified.

`base_model.init: random` keeps the source's architecture and tokenizer but not its weights (seeded
random initialisation): the from-scratch control of the controlled runs (docs/results.md)."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.config import Config
from pipelines.run_guard import guarded
from transforms.io.layout import BASE, MODEL_SUMMARY
from transforms.io.model_io import convert_gguf, load_causal_lm, model_sha256, save_atomically, sha256_file


def randomly_initialised(source: Path, seed: int):
    """(model, tokenizer) with the source's config and tokenizer and freshly initialised weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, kwargs = (source.parent, {"gguf_file": source.name}) if source.is_file() else (source, {})
    config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False, **kwargs)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False, **kwargs)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32), tokenizer


def main(config: Config) -> str:
    with guarded("prepare-model", config=config):
        return _prepare(config)


def _prepare(config: Config) -> str:
    cfg = config.base_model
    source = Path(cfg.source)
    if not source.exists():
        raise FileNotFoundError(f"base_model.source: {source} does not exist (run `make model` to fetch the default)")
    def write_summary(folder: Path) -> None:
        summary = {"source": str(source), "source_sha256": cfg.sha256 or None, "init": cfg.init,
                   "weights_sha256": model_sha256(folder)}
        (folder / MODEL_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")

    if source.is_file() and cfg.sha256:
        actual = sha256_file(source)
        if actual != cfg.sha256:
            raise ValueError(f"base_model.source: {source} has sha256 {actual}, expected {cfg.sha256}")
    if cfg.init == "random":
        model, tokenizer = randomly_initialised(source, config.seed)
        save_atomically(model, tokenizer, config.layout.model(BASE), finish=write_summary)
    elif source.is_file():
        convert_gguf(source, config.layout.model(BASE), finish=write_summary)
    else:
        model, tokenizer = load_causal_lm(source, policy=config.security.load_policy())
        save_atomically(model, tokenizer, config.layout.model(BASE), finish=write_summary)
    return model_sha256(config.layout.model(BASE))
