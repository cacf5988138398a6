"""Stage `prepare-model`: the base model as float32 safetensors under models/base, checksum verified."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.config import Config
from transforms.model_io import convert_gguf, load_causal_lm, model_sha256, save_atomically, sha256_file


def main(config: Config) -> str:
    cfg = config.base_model
    source = Path(cfg.source)
    if not source.exists():
        raise FileNotFoundError(f"base_model.source: {source} does not exist (run `make model` to fetch the default)")
    if source.is_file():
        if cfg.sha256:
            actual = sha256_file(source)
            if actual != cfg.sha256:
                raise ValueError(f"base_model.source: {source} has sha256 {actual}, expected {cfg.sha256}")
        convert_gguf(source, cfg.path)
    else:
        model, tokenizer = load_causal_lm(source)
        save_atomically(model, tokenizer, cfg.path)
    digest = model_sha256(cfg.path)
    (Path(cfg.path) / "selfsift_model.json").write_text(
        json.dumps({"source": str(source), "source_sha256": cfg.sha256 or None, "weights_sha256": digest},
                   indent=2) + "\n")
    return digest
