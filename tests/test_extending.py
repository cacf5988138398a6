"""Adding a judge or a curation step is one new module plus its import and its place in the order, and the stages then run it.

In a copy of the repo: a rule judge (`shouting`) and a row filter (`no_links`) are added the way
the README says, then the judge and curate stages run on a few candidates through the CLI."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_repo import copy_repo

JUDGE = '''"""Shouting: the share of the answer's letters in capitals."""

from transforms.judges.contract import JudgeResult, JudgeSpec


def shouting(config):
    def check(candidate, prompt):
        letters = [c for c in candidate["text"] if c.isalpha()]
        share = sum(c.isupper() for c in letters) / len(letters) if letters else 0.0
        return JudgeResult(1.0 - share, share < 0.5, {"capitals": round(share, 3)})

    return check


SPECS = (JudgeSpec("shouting", "rule", shouting),)
'''

FILTER = '''"""No links: answers that point elsewhere are rejected."""

from transforms.curation.steps import RowFilter


def no_links(plan):
    def check(row):
        return ("has_link", "links to another page") if "http" in row["text"] else None

    return check


STEP = RowFilter("no links", ("has_link",), no_links)
'''

# Runs inside the copy: writes prompts, candidates and a base model, then judge and curate.
RUN = '''
import json, shutil, sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.cli import main
from schemas.records import CANDIDATE
from tests.records import candidate
from tests.stage_fixtures import prompt, write_params, write_prompt_sets
from transforms.io.parquet_io import read_rows, shard_name

shutil.copytree(sys.argv[1], "models/base")
write_params(Path("."), "unused", judge={"llm_judge": {"enabled": False}},
             curate={"weights": {"ifeval_verifier": 1.0, "shouting": 1.0}},
             iterations={"iter-001": {"generator": "base"}})
train = [prompt(f"p{i}", f"Tell me about owls number {i}. Use no commas.", "train") for i in range(3)]
write_prompt_sets(Path("."), train, [prompt("e1", "Describe the moon landing in detail.", "eval")],
                  [prompt("o1", "List three kinds of bread for a picnic.", "eval_ood")])
texts = ["owls hunt at night and rest by day in hollow trees near quiet rivers where the water runs slow",
         "OWLS HUNT AT NIGHT AND REST BY DAY IN OLD BARNS NEAR WIDE FIELDS WHERE THE MICE RUN FAST AND FAR",
         "owls are birds of prey and you can read all about them at https://example.org today or any time soon"]
candidates = [candidate(f"c{i}", p, text, seed=i, max_new_tokens=64, completion_tokens=30)
              for i, (p, text) in enumerate(zip(train, texts))]
Path("data/candidates/iter-001").mkdir(parents=True)
pq.write_table(pa.Table.from_pylist(candidates, schema=CANDIDATE), f"data/candidates/iter-001/{shard_name(0, 1)}")
assert main(["judge", "--iteration", "1"]) == 0 and main(["curate", "--iteration", "1"]) == 0
print("RESULT " + json.dumps({
    "judges": sorted({j["judge"] for j in read_rows("data/judgments/iter-001")}),
    "kept": sorted(r["candidate_id"] for r in read_rows("data/shards/iter-001")),
    "rejected": {r["candidate_id"]: r["reason"] for r in read_rows("data/rejected/iter-001")},
    "funnel": json.loads(Path("data/shards/iter-001/manifest.json").read_text())["funnel"],
}))
'''


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout


def add_line_after(path: Path, anchor: str, line: str, last: bool = False) -> None:
    lines = path.read_text().splitlines(keepends=True)
    found = [i for i, text in enumerate(lines) if text.rstrip("\n") == anchor]
    at = found[-1] if last else found[0]
    path.write_text("".join(lines[: at + 1] + [line + "\n"] + lines[at + 1 :]))


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    root = tmp_path_factory.mktemp("extended")
    copy_repo(root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "as shipped")
    (root / "transforms/judges/shouting.py").write_text(JUDGE)
    registry = root / "transforms/judges/registry.py"
    add_line_after(registry, "    reward_model,", "    shouting,")  # its import
    add_line_after(registry, "    reward_model,", "    shouting,", last=True)  # its place among the judges
    (root / "transforms/curation/no_links.py").write_text(FILTER)
    chain = root / "transforms/curation/chain.py"
    add_line_after(chain, "    near_dedup,", "    no_links,")  # its import
    add_line_after(chain, "    heuristic_gate,", "    no_links,", last=True)  # its place in the chain
    return root


def test_each_addition_is_one_module_its_import_and_its_place(extended):
    git(extended, "add", "-A")
    changes = {}
    for line in git(extended, "diff", "--cached", "--numstat").splitlines():
        added, removed, path = line.split("\t")
        changes[path] = (int(added), int(removed))
    assert changes == {
        "transforms/judges/shouting.py": (len(JUDGE.splitlines()), 0),
        "transforms/judges/registry.py": (2, 0),
        "transforms/curation/no_links.py": (len(FILTER.splitlines()), 0),
        "transforms/curation/chain.py": (2, 0),
    }


def test_the_stages_run_the_new_judge_and_filter(extended, tiny_model_dir):
    work = extended / "work"
    work.mkdir()
    shutil.copy(extended / "params.yaml", work / "params.yaml")
    env = {**os.environ, "PYTHONPATH": str(extended)}
    done = subprocess.run([sys.executable, "-c", RUN, str(tiny_model_dir)], cwd=work, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert "shouting" in result["judges"]
    assert result["kept"] == ["c0"]
    assert result["rejected"] == {"c1": "below_threshold", "c2": "has_link"}  # shouted; linked
    steps = [step["step"] for step in result["funnel"]]
    assert steps.index("no links") == steps.index("heuristics") + 1
    assert next(s for s in result["funnel"] if s["step"] == "no links")["rejected"] == {"has_link": 1}
