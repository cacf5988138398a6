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
    def write_summary(folder: Path) -> None:
        summary = {"source": str(source), "source_sha256": cfg.sha256 or None, "weights_sha256": model_sha256(folder)}
        (folder / "selfsift_model.json").write_text(json.dumps(summary, indent=2) + "\n")

    if source.is_file():
        if cfg.sha256:
            actual = sha256_file(source)
            if actual != cfg.sha256:
                raise ValueError(f"base_model.source: {source} has sha256 {actual}, expected {cfg.sha256}")
        convert_gguf(source, config.model_dir("base"), finish=write_summary)
    else:
        model, tokenizer = load_causal_lm(source, policy=config.security.load_policy())
        save_atomically(model, tokenizer, config.model_dir("base"), finish=write_summary)
    return model_sha256(config.model_dir("base"))
