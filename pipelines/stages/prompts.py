"""Stage `prompts`: writes data/prompts/{train,eval,eval_ood}.parquet, and one file per eval set of your
own (`evaluate.sets`), data/prompts/<name>.parquet. Every file is read and checked before any is written."""

from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

from pipelines.config import Config
from pipelines.run.guard import guarded
from pipelines.stage import Out, Stage
from schemas.records import PROMPT
from transforms.io.layout import EVAL_SPLITS
from transforms.io.parquet_io import table_bytes, write_atomically
from transforms.judges.contract import prompt_text
from transforms.judges.ifeval_verifier import NAME as VERIFIER
from transforms.prompts.prompt_builder import build_split
from transforms.prompts.prompt_reader import read_prompt_file


def write_prompts(rows: list[dict], path: str) -> None:
    write_atomically(path, table_bytes(rows, PROMPT))


def main(config: Config) -> dict[str, int]:
    with guarded("prompts", config=config):
        return _write_prompts(config)


def own_eval_sets(config: Config) -> dict[str, list[dict]]:
    """{name: its prompts} of `evaluate.sets`; a set the verifier scores needs IFEval constraints on every prompt."""
    sets = {}
    for name, eval_set in config.evaluate.sets.items():
        prompts = read_prompt_file(eval_set.prompts, split=name)
        bare = [p["prompt_id"] for p in prompts if not p["instruction_ids"]]
        if eval_set.judge == VERIFIER and bare:
            raise ValueError(f"evaluate.sets.{name}: judge {VERIFIER} checks IFEval constraints, but {len(bare)} "
                             f"prompts of {eval_set.prompts} have no instruction_ids (first: {bare[0]})")
        sets[name] = prompts
    return sets


def refuse_leaks(train: list[dict], eval_sets: dict[str, list[dict]]) -> None:
    """Raises when a train prompt is also a prompt of an eval set: the model would be measured on what it trained on."""
    for name, prompts in eval_sets.items():
        texts = {prompt_text(p) for p in prompts}
        leaked = [p["prompt_id"] for p in train if prompt_text(p) in texts]
        if leaked:
            which = "eval" if name in EVAL_SPLITS else f"evaluate.sets.{name}"
            raise ValueError(f"{len(leaked)} train prompts are also {which} prompts (first: {leaked[0]}); remove them")


def _write_prompts(config: Config) -> dict[str, int]:
    cfg = config.prompts
    if cfg.source == "builtin":
        train = build_split("train", cfg.train_size, cfg.seed, cfg.max_constraints)
    else:
        train = read_prompt_file(cfg.source, split="train")
    eval_sets = {
        "eval": build_split("eval", cfg.eval_size, cfg.seed, cfg.max_constraints),
        "eval_ood": build_split("eval_ood", cfg.eval_ood_size, cfg.seed, cfg.max_constraints),
        **own_eval_sets(config),
    }
    refuse_leaks(train, eval_sets)
    out = config.layout.prompts_folder()
    if not FileSystems.exists(out):
        FileSystems.mkdirs(out)
    splits = {"train": train, **eval_sets}
    for name, rows in splits.items():
        write_prompts(rows, config.layout.prompts(name))
    return {name: len(rows) for name, rows in splits.items()}


STAGE = Stage(
    "prompts", "write the train, eval and eval_ood prompt sets", lambda args, config, beam: main(config),
    params=("prompts", "evaluate.sets"),
    writes=lambda where: [Out(where.layout.prompts_folder())],
    produces=lambda where: where.layout.prompts("train"))
