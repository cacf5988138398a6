"""Writes small stage inputs (prompts, shards) into a working folder for stage-level tests."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from schemas.records import PAIR, PROMPT, SHARD_ROW
from transforms.io.parquet_io import shard_name


def prompt(pid: str, text: str, split: str) -> dict:
    return {"prompt_id": pid, "messages": [{"role": "user", "content": text}],
            "instruction_ids": ["punctuation:no_comma"], "kwargs": ["{}"], "source": "test", "split": split}


def write_params(root: Path, model_source: str, **overrides) -> Path:
    params = yaml.safe_load(Path("params.yaml").read_text()) if Path("params.yaml").exists() else {}
    params["base_model"] = {"source": model_source, "sha256": ""}
    for section, values in overrides.items():
        params[section] = {**params.get(section, {}), **values} if isinstance(values, dict) else values
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def write_prompt_sets(root: Path, train: list[dict], eval_: list[dict], eval_ood: list[dict]) -> None:
    out = root / "data" / "prompts"
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("eval", eval_), ("eval_ood", eval_ood)):
        pq.write_table(pa.Table.from_pylist(rows, schema=PROMPT), out / f"{name}.parquet")


def pair(pid: str, p: dict, chosen: str, rejected: str) -> dict:
    return {"pair_id": pid, "prompt_id": p["prompt_id"], "prompt": p["messages"],
            "chosen": [{"role": "assistant", "content": chosen}], "rejected": [{"role": "assistant", "content": rejected}],
            "chosen_candidate_id": f"{pid}-c", "rejected_candidate_id": f"{pid}-r", "chosen_score": 1.0,
            "rejected_score": 0.0, "margin": 1.0, "rejected_reason": "below_threshold"}


def write_shards(root: Path, iteration: str, rows: list[dict], folder: str = "shards", schema=SHARD_ROW) -> None:
    out = root / "data" / folder / iteration
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / shard_name(0, 1))


def write_pairs(root: Path, iteration: str, rows: list[dict]) -> None:
    write_shards(root, iteration, rows, folder="pairs", schema=PAIR)


class chdir:
    def __init__(self, path):
        self.path, self.old = path, None

    def __enter__(self):
        self.old = os.getcwd()
        os.chdir(self.path)

    def __exit__(self, *exc):
        os.chdir(self.old)
