"""Stage `prompts`: writes data/prompts/{train,eval,eval_ood}.parquet."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.config import Config
from schemas.records import PROMPT
from transforms.prompt_builder import build_split
from transforms.prompt_reader import read_prompt_file


def write_prompts(rows: list[dict], path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    pq.write_table(pa.Table.from_pylist(rows, schema=PROMPT), tmp, compression="zstd")
    tmp.replace(path)


def main(config: Config) -> dict[str, int]:
    cfg = config.prompts
    if cfg.source == "builtin":
        train = build_split("train", cfg.train_size, config.seed, cfg.max_constraints)
    else:
        train = read_prompt_file(cfg.source, split="train")
    splits = {
        "train": train,
        "eval": build_split("eval", cfg.eval_size, config.seed, cfg.max_constraints),
        "eval_ood": build_split("eval_ood", cfg.eval_ood_size, config.seed, cfg.max_constraints),
    }
    eval_texts = {p["messages"][-1]["content"] for name in ("eval", "eval_ood") for p in splits[name]}
    leaked = [p["prompt_id"] for p in train if p["messages"][-1]["content"] in eval_texts]
    if leaked:
        raise ValueError(f"{len(leaked)} train prompts are also eval prompts (first: {leaked[0]}); remove them")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        write_prompts(rows, out / f"{name}.parquet")
    return {name: len(rows) for name, rows in splits.items()}
