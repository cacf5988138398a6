"""A temporary copy of the repo whose params run the whole loop on a tiny random model in seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "prompts": {"train_size": 10, "eval_size": 6, "eval_ood_size": 6},
    "generate": {"candidates_per_prompt": 3, "max_new_tokens": 12, "micro_batch_size": 8, "num_shards": 2},
    # A random model follows no instruction: accept any verifier score and any shape so fine-tuning has data.
    "judge": {"num_shards": 2, "verifier": {"threshold": 0.0},
              "heuristics": {"min_words": 1, "drop_truncated": False, "max_repeated_ngram_share": 1.0,
                             "max_prompt_echo": 1.0}},
    "curate": {"max_per_prompt": 2, "num_shards": 2},
    "finetune": {"epochs": 1, "batch_size": 4, "max_length": 96},
    "evaluate": {"max_new_tokens": 12, "micro_batch_size": 8},
}


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


def merged_into(params: dict, overrides: dict) -> None:
    """Overrides nested keys in place, keeping every other key of params.yaml (as a user's edit would)."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            merged_into(params[key], value)
        else:
            params[key] = value


def tiny_repo(dest: Path, model_dir: Path, iterations: dict | None = None) -> dict:
    """Copies the repo to `dest` with tiny params; returns the environment to run `dvc` in it."""
    copy_repo(dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["base_model"] = {"source": str(model_dir), "sha256": "", "path": "models/base"}
    merged_into(params, TINY)
    if iterations is not None:
        params["iterations"] = iterations
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
