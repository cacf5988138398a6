"""A temporary copy of the repo whose params run the whole loop on a tiny model in seconds.

The end-to-end repo gates with params.yaml's own judge settings (verifier threshold 1.0, default
heuristics). A random tiny model cannot pass them: it almost never emits the end of its turn, so
every answer is truncated, and what it writes repeats. The base model is instead a tiny model
fitted (tests/tiny_model.build_fitted_model, a few seconds) to a task it passes sometimes: every
train prompt asks for an answer without commas (IFEval's punctuation:no_comma), and the model
samples one of a fixed set of answers, each passing or failing in a known way:

| answer (share)                                    | fate                                        |
| ------------------------------------------------- | ------------------------------------------- |
| two sentences, no comma, ends (1/2; 16 wordings)  | passes every judge: kept, or duplicate      |
| a sentence with commas (1/8)                      | below_threshold (the verifier)              |
| "yes" sixteen times (1/8)                         | repetitive                                  |
| "Thank you." (1/8)                                | length_out_of_bounds (under min_words)      |
| a long sentence that never ends (1/8)             | truncated (hits generate.max_new_tokens)    |
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SIZES = {
    "prompts": {"train_size": 10, "eval_size": 6, "eval_ood_size": 6},
    "generate": {"candidates_per_prompt": 3, "max_new_tokens": 12, "micro_batch_size": 8, "num_shards": 2},
    "judge": {"num_shards": 2},
    "curate": {"max_per_prompt": 2, "num_shards": 2},
    "finetune": {"epochs": 1, "batch_size": 4, "max_length": 96},
    "evaluate": {"max_new_tokens": 12, "micro_batch_size": 8},
}


def merged_into(params: dict, overrides: dict) -> None:
    """Overrides nested keys in place, keeping every other key of params.yaml (as a user's edit would)."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            merged_into(params[key], value)
        else:
            params[key] = copy.deepcopy(value)


def merged(params: dict, overrides: dict) -> dict:
    out = copy.deepcopy(params)
    merged_into(out, overrides)
    return out


# Stage tests on the random tiny model, which follows no instruction and never stops: they accept
# any verifier score and any shape so that fine-tuning has data. The end-to-end repo does not.
TINY = merged(SIZES, {"judge": {"verifier": {"threshold": 0.0},
                                "heuristics": {"min_words": 1, "drop_truncated": False,
                                               "max_repeated_ngram_share": 1.0, "max_prompt_echo": 1.0}}})

# The task. The prompts share no word with the answers, so the fitted model answers each alike.
PROMPT_FILE = "tiny_prompts.jsonl"
TOPICS = ("owls", "volcanoes", "glaciers", "penguins", "caves", "frogs", "robots", "clocks", "bats", "whales")
PROMPTS = tuple(f"Describe {topic} but do not use any commas" for topic in TOPICS)
FIRST = ("Rain falls on green hills and rivers carry water back to sea.",
         "Plants grow best with steady light and fresh water every week.",
         "Bees carry pollen between flowers so fruit trees bloom each spring.",
         "Weekly meal plans keep shopping lists short and budgets calm.")
SECOND = ("Small daily habits like these make real differences over time.",
          "Ask friends to try this with you and share what you learn.",
          "Start today and notice how quickly results begin to show.",
          "Write down one thing you learned so this idea stays with you.")
GOOD = tuple(f"{first} {second}" for first in FIRST for second in SECOND)
COMMAS = "First, fill your largest pot with water, then add salt, and wait until it boils before pasta goes in."
REPETITIVE = " ".join(["yes"] * 16)
SHORT = "Thank you."
ENDLESS = ("Long ago people walked everywhere and carried heavy loads on their backs until clever inventors built "
           "carts and wagons and boats and trains and at last bicycles that let anyone travel far across land "
           "until they tire")  # 37 tokens, never followed by the end of the turn
ANSWERS = tuple((text, True) for text in GOOD) + ((COMMAS, True), (REPETITIVE, True), (SHORT, True), (ENDLESS, False)) * 4
END_TO_END = merged(SIZES, {"prompts": {"source": PROMPT_FILE},
                            "generate": {"max_new_tokens": 32},  # room for a good answer (~24 tokens), not ENDLESS
                            "finetune": {"max_length": 128}})


def task_model(model_dir: Path) -> Path:
    """The model fitted to the task, built once beside `model_dir` (the random tiny model)."""
    from tests.tiny_model import build_fitted_model

    out = model_dir.parent / "task-model"
    if not out.is_dir():
        building = model_dir.parent / ".task-model-building"
        shutil.rmtree(building, ignore_errors=True)
        build_fitted_model(building, PROMPTS, ANSWERS)
        building.rename(out)
    return out


def copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    for generated in ("dvc.lock", "metrics", "reports"):
        path = dest / generated
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)


def tiny_repo(dest: Path, model_dir: Path, iterations: dict | None = None) -> dict:
    """Copies the repo to `dest` with tiny params and the task; returns the environment to run `dvc` in it."""
    copy_repo(dest)
    with open(dest / PROMPT_FILE, "w") as f:
        for prompt in PROMPTS:
            f.write(json.dumps({"prompt": prompt, "instruction_ids": ["punctuation:no_comma"], "kwargs": [{}]}) + "\n")
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["base_model"] = {"source": str(task_model(model_dir)), "sha256": "", "path": "models/base"}
    merged_into(params, END_TO_END)
    if iterations is not None:
        params["iterations"] = iterations
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
