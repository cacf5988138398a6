"""Stage `prepare-model`: the base model as float32 safetensors under models/base, checksum verified.

`base_model.init: random` keeps the source's architecture and tokenizer but not its weights (seeded
random initialisation): the from-scratch control of the controlled runs (docs/results.md).

A Hub source (hf://OWNER/NAME@COMMIT) is downloaded once into models/hub (transforms/io/hub_models.py)
and then prepared like a local folder; the summary records its Hub id and commit, which the dataset
card names. DVC knows the source by its params, not its files: a Hub source by its pinned commit, a
GGUF file by `base_model.sha256` (checked here), a local folder by its path alone (docs/guarantees.md,
"Models in DVC")."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from pipelines.config import Config
from pipelines.run.guard import guarded
from pipelines.stage import Out, Stage
from transforms.io import hub_models
from transforms.io.layout import BASE, MODEL_SUMMARY
from transforms.io.model_io import (
    ModelRefused,
    UntrustedModelFolder,
    convert_gguf,
    load_causal_lm,
    local_model_dir,
    model_sha256,
    save_atomically,
    sha256_file,
)


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


@contextlib.contextmanager
def _naming_the_source():
    """Errors about the source model name its param."""
    try:
        yield
    except (FileNotFoundError, ModelRefused, UntrustedModelFolder) as exc:
        raise type(exc)(f"base_model.source: {exc}") from exc


def _local_source(source: str) -> tuple[Path, dict]:
    """The source on local disk, and what the summary records of its Hub origin (nothing for a local one)."""
    if hub_models.is_hub_id(source):
        with _naming_the_source():
            folder = Path(local_model_dir(source))
        return folder, hub_models.origin(folder)
    if not Path(source).exists():
        raise FileNotFoundError(f"base_model.source: {source} does not exist (run `make model` to fetch the default)")
    return Path(source), {}


def _prepare(config: Config) -> str:
    cfg = config.base_model
    source, hub_origin = _local_source(cfg.source)

    def write_summary(folder: Path) -> None:
        summary = {"source": cfg.source, **hub_origin, "source_sha256": cfg.sha256 or None, "init": cfg.init,
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
        with _naming_the_source():
            model, tokenizer = load_causal_lm(source, policy=config.security.load_policy())
        save_atomically(model, tokenizer, config.layout.model(BASE), finish=write_summary)
    return model_sha256(config.layout.model(BASE))


STAGE = Stage(
    "prepare-model", "convert the base model to safetensors under base_model.path",
    lambda args, config, beam: main(config),
    params=("seed", "base_model"),  # the source model is known by its params, not as a dep (docs/guarantees.md)
    writes=lambda where: [Out(where.layout.model(BASE))],
    produces=lambda where: where.layout.model_summary(where.layout.model(BASE)), dvc_name="base_model")
