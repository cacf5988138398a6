"""Stage `prompts`: writes data/prompts/{train,eval,eval_ood}.parquet."""

from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

from pipelines.config import Config
from pipelines.run_guard import guarded
from schemas.records import PROMPT
from transforms.io.parquet_io import table_bytes, write_atomically
from transforms.prompts.prompt_builder import build_split
from transforms.prompts.prompt_reader import read_prompt_file


def write_prompts(rows: list[dict], path: str) -> None:
    write_atomically(path, table_bytes(rows, PROMPT))


def main(config: Config) -> dict[str, int]:
    with guarded("prompts", config=config):
        return _write_prompts(config)


def _write_prompts(config: Config) -> dict[str, int]:
    cfg = config.prompts
    if cfg.source == "builtin":
        train = build_split("train", cfg.train_size, cfg.seed, cfg.max_constraints)
    else:
        train = read_prompt_file(cfg.source, split="train")
    splits = {
        "train": train,
        "eval": build_split("eval", cfg.eval_size, cfg.seed, cfg.max_constraints),
        "eval_ood": build_split("eval_ood", cfg.eval_ood_size, cfg.seed, cfg.max_constraints),
    }
    eval_texts = {p["messages"][-1]["content"] for name in ("eval", "eval_ood") for p in splits[name]}
    leaked = [p["prompt_id"] for p in train if p["messages"][-1]["content"] in eval_texts]
    if leaked:
        raise ValueError(f"{len(leaked)} train prompts are also eval prompts (first: {leaked[0]}); remove them")
    out = config.layout.prompts_folder()
    if not FileSystems.exists(out):
        FileSystems.mkdirs(out)
    for name, rows in splits.items():
        write_prompts(rows, config.layout.prompts(name))
    return {name: len(rows) for name, rows in splits.items()}
