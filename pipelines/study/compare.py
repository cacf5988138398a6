"""`selfsift compare A B`: two models' answers to the same eval prompts, paired. A and B are iterations
of this project (0 is the base model) or folders of eval answers (`data/evals/<iteration>` of any run, e.g.
another variant's workspace). Prints, per eval set both answered, B minus A in prompt-level strict accuracy
with its 95 % paired-bootstrap interval and McNemar's exact p; a difference is marked significant only when
p < 0.05."""

from __future__ import annotations

from pathlib import Path

from pipelines.config import Config, ConfigError, iteration_name
from transforms.evaluation.comparison import compare_answers
from transforms.io.layout import EVAL_SPLITS
from transforms.io.parquet_io import list_shards, read_rows


def answers_folder(config: Config, model: str) -> str:
    """The eval answers of `model`: a folder of answer shards, or an iteration number or name."""
    if Path(model).is_dir():
        folder = model
    else:
        try:
            folder = config.layout.evals(iteration_name(model))
        except ConfigError:
            raise ConfigError(f"{model!r} is neither a folder of eval answers nor an iteration (0 is the base "
                              f"model)") from None
    if not list_shards(folder):
        raise FileNotFoundError(f"{folder}: no eval answers (run `selfsift evaluate --iteration ...` first)")
    return folder


def compare(config: Config, model_a: str, model_b: str) -> dict[str, dict]:
    folder_a, folder_b = answers_folder(config, model_a), answers_folder(config, model_b)
    rows_a, rows_b = read_rows(folder_a), read_rows(folder_b)
    shared = {r["split"] for r in rows_a} & {r["split"] for r in rows_b}
    splits = [s for s in EVAL_SPLITS if s in shared] + sorted(shared - set(EVAL_SPLITS))
    if not splits:
        raise ValueError(f"{folder_a} and {folder_b} answered no eval set in common")
    return compare_answers(rows_a, rows_b, splits, f"{folder_a} vs {folder_b}")


def comparison_table(result: dict[str, dict], model_a: str, model_b: str) -> str:
    lines = [f"B = {model_b} minus A = {model_a}, prompt-level strict accuracy, paired on the same prompts", "",
             "| eval set | prompts | A % | B % | B − A (95 % interval) | B only | A only | McNemar p | significant |",
             "|---|---|---|---|---|---|---|---|---|"]
    for split, c in result.items():
        lines.append(f"| {split} | {c['n_prompts']} | {100 * c['accuracy_a']:.1f} | {100 * c['accuracy_b']:.1f} | "
                     f"{100 * c['difference']:+.1f} ({100 * c['difference_low']:+.1f} to {100 * c['difference_high']:+.1f})"
                     f" | {c['gained']} | {c['lost']} | {c['p_value']:.3g} | {'yes' if c['significant'] else 'no'} |")
    return "\n".join(lines)
