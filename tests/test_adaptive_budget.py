"""generate.budget adaptive: the allocation (transforms/generation/adaptive_budget.py) and the stage's rounds."""

import json
import random
import shutil

import pytest

from pipelines import config as config_module
from pipelines.config import ConfigError
from pipelines.stages import curate, generate, judge
from tests.stage_fixtures import chdir, prompt, write_params, write_prompt_sets
from transforms.generation.adaptive_budget import (
    MIN_DIFFICULTY,
    PromptState,
    allocate,
    difficulty,
    round_budget,
    score_rounds,
)
from transforms.io import faults
from transforms.io.parquet_io import read_rows
from transforms.judges.ifeval_verifier import VerifierConfig, verifier

# --- the allocation -------------------------------------------------------------------------------------------


def states(n: int, types=("a",), solved=(), sampled: int = 2) -> dict[str, PromptState]:
    return {f"p{i:03d}": PromptState(tuple(types), sampled, f"p{i:03d}" in solved) for i in range(n)}


def run_rounds(prompts: dict[str, PromptState], k: int, first: int, rounds: int, cap: int,
               solve=lambda pid, r: False) -> dict[str, int]:
    """Every prompt's candidates after simulating the rounds; `solve(prompt, round)` says which get solved."""
    total, sampled = k * len(prompts), {pid: first for pid in prompts}
    solved = set()
    for r in range(2, rounds + 2):
        now = {pid: PromptState(s.instruction_ids, sampled[pid], pid in solved) for pid, s in prompts.items()}
        budget = round_budget(total, sum(sampled.values()), rounds + 2 - r)
        given = allocate(now, {"a": 0.2, "b": 0.8}, budget, cap, seed=7, generation_round=r)
        assert sum(given.values()) <= budget
        for pid, count in given.items():
            sampled[pid] += count
        solved |= {pid for pid in prompts if solve(pid, r)}
    return sampled


@pytest.mark.parametrize("prompts, k, first, rounds", [(10, 4, 2, 2), (37, 4, 1, 3), (5, 8, 3, 1), (12, 6, 2, 4),
                                                           (7, 4, 1, 2), (9, 5, 2, 3)])
def test_nothing_solved_spends_exactly_the_uniform_budget_and_spreads_it_evenly(prompts, k, first, rounds):
    sampled = run_rounds(states(prompts), k, first, rounds, cap=64)
    assert sum(sampled.values()) == k * prompts
    assert max(sampled.values()) - min(sampled.values()) <= 1  # equal difficulty: an even spread


def test_the_budget_is_never_exceeded_and_the_cap_holds_when_few_prompts_are_unsolved():
    prompts = states(20)
    sampled = run_rounds(prompts, 4, 2, 3, cap=5, solve=lambda pid, r: pid != "p000" and pid != "p001")
    assert sum(sampled.values()) <= 4 * 20
    assert max(sampled.values()) == 5 and sampled["p000"] == sampled["p001"] == 5
    # what the cap left unspent in round 2 rolled over, but could not be spent either
    assert sum(sampled.values()) < 4 * 20


def test_unsolved_and_harder_prompts_get_more():
    prompts = {**{f"easy{i}": PromptState(("b",), 2, False) for i in range(5)},
               **{f"hard{i}": PromptState(("a",), 2, False) for i in range(5)},
               **{f"done{i}": PromptState(("a",), 2, True) for i in range(5)}}
    rates = {"a": 0.1, "b": 0.7}  # difficulty 0.9 vs 0.3: three times the share
    given = allocate(prompts, rates, budget=40, cap=16, seed=1, generation_round=2)
    assert not any(pid.startswith("done") for pid in given)
    assert sum(v for p, v in given.items() if p.startswith("hard")) == 30
    assert sum(v for p, v in given.items() if p.startswith("easy")) == 10


def test_a_prompt_is_as_hard_as_its_rarest_passing_type_with_a_floor():
    rates = {"a": 0.9, "b": 0.25, "c": 1.0}
    assert difficulty(("a", "b"), rates) == pytest.approx(0.75)
    assert difficulty(("c",), rates) == MIN_DIFFICULTY
    assert difficulty(("never_checked",), rates) == 1.0
    assert difficulty((), rates) == 1.0  # no constraints: nothing to learn from, hardest
    given = allocate({"x": PromptState(("c",), 1, False), "y": PromptState(("b",), 1, False)}, rates, 17, 99, 0, 2)
    assert given == {"x": 2, "y": 15}  # the floor still gives an unsolved prompt of an all-passing type a share


def test_allocation_is_deterministic_whatever_the_order_and_seeded():
    prompts = states(30, solved={"p004", "p010"})
    rates = {"a": 0.5}
    reference = allocate(prompts, rates, 41, 16, seed=3, generation_round=2)
    items = list(prompts.items())
    for shuffle_seed in range(3):
        random.Random(shuffle_seed).shuffle(items)
        assert allocate(dict(items), rates, 41, 16, seed=3, generation_round=2) == reference
    assert sum(reference.values()) == 41 and set(reference) == set(prompts) - {"p004", "p010"}
    # 41 over 28 equal prompts: which 13 get a second one is a seeded draw, not the alphabet
    others = [allocate(prompts, rates, 41, 16, seed=s, generation_round=2) for s in range(4, 8)]
    assert any(o != reference for o in others)
    assert [p for p, v in reference.items() if v == 2] != sorted(reference)[:13]


def test_without_constraints_the_budget_is_spread_uniformly():
    prompts = [{"prompt_id": f"p{i}", "instruction_ids": [], "kwargs": []} for i in range(6)]
    made = [{"candidate_id": f"c{i}{j}", "prompt_id": f"p{i}", "text": "x"} for i in range(6) for j in range(2)]
    never = lambda candidate, prompt: pytest.fail("a prompt without constraints was checked")  # noqa: E731
    found, rates = score_rounds(prompts, made, never)
    assert rates == {} and all(s.sampled == 2 and not s.solved for s in found.values())
    given = allocate(found, rates, 12, 16, seed=0, generation_round=2)
    assert given == {f"p{i}": 2 for i in range(6)}


def test_among_checkable_prompts_one_without_constraints_gets_nothing_more():
    mixed = {**states(3, types=("a",)), "free": PromptState((), 2, False)}
    given = allocate(mixed, {"a": 0.0}, 9, 16, seed=0, generation_round=2)
    assert "free" not in given and sum(given.values()) == 9


def test_rounds_are_scored_with_the_verifier_per_instruction_type():
    prompts = [{"prompt_id": "p1", "instruction_ids": ["punctuation:no_comma"], "kwargs": ["{}"],
                "messages": [{"role": "user", "content": "No commas."}]},
               {"prompt_id": "p2", "instruction_ids": ["punctuation:no_comma", "change_case:english_lowercase"],
                "kwargs": ["{}", "{}"], "messages": [{"role": "user", "content": "No commas, lowercase."}]}]
    made = [{"candidate_id": "a", "prompt_id": "p1", "text": "Owls hunt at night."},
            {"candidate_id": "b", "prompt_id": "p2", "text": "Owls, hunt."},
            {"candidate_id": "c", "prompt_id": "p2", "text": "Owls hunt at night."}]
    found, rates = score_rounds(prompts, made, verifier(VerifierConfig()))
    assert found["p1"] == PromptState(("punctuation:no_comma",), 1, True)
    assert found["p2"] == PromptState(("punctuation:no_comma", "change_case:english_lowercase"), 2, False)
    assert rates == {"change_case:english_lowercase": 0.0, "punctuation:no_comma": pytest.approx(2 / 3)}


@pytest.mark.parametrize("adaptive, message", [
    ({"first_round": 4}, "generate.adaptive.first_round (4) must be below generate.candidates_per_prompt (4)"),
    ({"max_candidates_per_prompt": 3}, "generate.adaptive.max_candidates_per_prompt (3) must be at least "
                                       "generate.candidates_per_prompt (4)"),
    ({"rounds": 0}, "generate.adaptive.rounds must be at least 1"),
])
def test_bad_adaptive_settings_are_named(tmp_path, adaptive, message):
    path = write_params(tmp_path, "unused", generate={"budget": "adaptive", "adaptive": adaptive})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_module.load(path)


def test_an_unknown_budget_is_named(tmp_path):
    with pytest.raises(ConfigError, match="generate.budget must be one of uniform, adaptive"):
        config_module.load(write_params(tmp_path, "unused", generate={"budget": "greedy"}))


# --- the stage ------------------------------------------------------------------------------------------------

def constrained(pid: str, text: str, instruction_id: str, kwargs: dict) -> dict:
    return {**prompt(pid, text, "train"), "instruction_ids": [instruction_id], "kwargs": [json.dumps(kwargs)]}


# The random tiny model writes words (so "at least one word" passes) but never all capitals in English.
EASY = [constrained(f"easy{i}", f"Say something about topic {i}.", "length_constraints:number_words",
                    {"num_words": 1, "relation": "at least"}) for i in range(2)]
HARD = [constrained(f"hard{i}", f"SHOUT about topic {i}.", "change_case:english_capital", {}) for i in range(2)]
# K 4 x 4 prompts = 16; round 1: 1 each (4); round 2: 12 // 2 = 6 over the two unsolved (3 each);
# round 3: the 6 left, but the cap (6) leaves room for 2 each: 4, and 2 stay unspent.
ADAPTIVE = {"candidates_per_prompt": 4, "budget": "adaptive", "num_shards": 2, "max_new_tokens": 8,
            "micro_batch_size": 8, "dtype": "float32", "device": "cpu",
            "adaptive": {"first_round": 1, "rounds": 2, "max_candidates_per_prompt": 6}}
EXPECTED = {"easy0": [1], "easy1": [1], "hard0": [1, 3, 2], "hard1": [1, 3, 2]}  # candidates per round


@pytest.fixture
def workdir(tmp_path, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "models/base")
    write_params(tmp_path, "unused", generate=ADAPTIVE,
                 judge={"num_shards": 1, "llm_judge": {"enabled": False}, "heuristics": {"min_words": 1}},
                 curate={"num_shards": 1})
    write_prompt_sets(tmp_path, EASY + HARD, [prompt("e1", "Write about frogs.", "eval")],
                      [prompt("o1", "Write about caves.", "eval_ood")])
    return tmp_path


def generated(root) -> dict[str, bytes]:
    folder = root / "data/candidates/iter-001"
    return {f.name: f.read_bytes() for f in sorted(folder.glob("part-*"))}


def test_adaptive_rounds_spend_the_rest_on_unsolved_prompts_and_curation_accounts_for_them(workdir):
    config = config_module.load(workdir / "params.yaml")
    with chdir(workdir):
        manifest = generate.main(config, "iter-001", [])
        rows = read_rows("data/candidates/iter-001")
        judge.main(config, "iter-001", [])
        curated = curate.main(config, "iter-001", [])
        kept = read_rows("data/shards/iter-001")
        rejected = read_rows("data/rejected/iter-001")

    assert sorted(generated(workdir)) == [f"part-0000{i}-of-00002{tag}.parquet"
                                          for i in range(2) for tag in ("", ".round-02", ".round-03")]
    per_round = {pid: [sum(r["prompt_id"] == pid and r["generation_round"] == g for r in rows) for g in (1, 2, 3)]
                 for pid in EXPECTED}
    assert {pid: [c for c in counts if c] for pid, counts in per_round.items()} == EXPECTED
    assert [(r["round"], r["budget"], r["prompts"], r["candidates"]) for r in manifest["rounds"]] == [
        (1, 16, 4, 4), (2, 6, 2, 6), (3, 6, 2, 4)]
    assert manifest["rows"] == len(rows) == 14 <= 16 and manifest["budget"] == "adaptive"
    # sample indexes continue per prompt, so ids and seeds are those uniform sampling gives each index
    for pid in EXPECTED:
        mine = sorted((r["sample_index"], r["generation_round"]) for r in rows if r["prompt_id"] == pid)
        assert [i for i, _ in mine] == list(range(sum(EXPECTED[pid])))
        assert [g for _, g in mine] == sorted(g for g, n in enumerate(EXPECTED[pid], 1) for _ in range(n))
    assert len({r["candidate_id"] for r in rows}) == len({r["seed"] for r in rows}) == 14
    assert {(r["origin"], r["parent_candidate_id"]) for r in rows} == {("sampled", "")}
    # conservation: every candidate of every round leaves curation once, kept or rejected with a reason
    out = [r["candidate_id"] for r in kept + rejected]
    assert sorted(out) == sorted(r["candidate_id"] for r in rows)
    assert curated["rows_out"] + sum(curated["rejected"].values()) == 14
    assert {r["generation_round"] for r in kept + rejected} == {1, 2, 3}


def test_a_killed_round_resumes_reusing_the_completed_rounds_to_identical_candidates(workdir, tmp_path_factory,
                                                                                   monkeypatch, caplog):
    reference = tmp_path_factory.mktemp("uninterrupted")
    shutil.copytree(workdir, reference, dirs_exist_ok=True)
    with chdir(reference):
        generate.main(config_module.load("params.yaml"), "iter-001", [])

    config = config_module.load(workdir / "params.yaml")
    hits = []

    def reached(point):  # stands in for SIGKILL (tests/test_fault_injection.py kills for real)
        hits.append(point)
        if hits.count("mid_write") == 4:  # round 1's two shards and round 2's first are written
            raise RuntimeError("killed at mid_write")

    monkeypatch.setattr(faults, "reached", reached)
    with chdir(workdir), pytest.raises(RuntimeError, match="killed"):
        generate.main(config, "iter-001", [])
    monkeypatch.undo()
    assert not (workdir / "data/candidates/iter-001/manifest.json").exists()
    caplog.set_level("INFO", logger="selfsift")
    caplog.clear()
    with chdir(workdir):
        generate.main(config, "iter-001", [])
    assert "generate@iter-001: resuming; 2 of 2 shards (4 candidates)" in caplog.text
    assert "generate@iter-001.round-02: resuming; 1 of 2 shards" in caplog.text
    assert "generate@iter-001.round-03: resuming" not in caplog.text
    assert "generate@iter-001.round-02: 3 of 3 candidates (100 %)" in caplog.text  # each round its own progress
    assert generated(workdir) == generated(reference)
    assert not list((workdir / ".selfsift/runs").glob("generate@iter-001*.progress.json"))


def test_uniform_after_adaptive_leaves_no_round_behind_and_samples_the_same_first_candidates(workdir):
    with chdir(workdir):
        generate.main(config_module.load("params.yaml"), "iter-001", [])
        adaptive = read_rows("data/candidates/iter-001")
        write_params(workdir, "unused", generate={**ADAPTIVE, "budget": "uniform"})
        manifest = generate.main(config_module.load("params.yaml"), "iter-001", [])
        uniform = read_rows("data/candidates/iter-001")
    assert sorted(generated(workdir)) == ["part-00000-of-00002.parquet", "part-00001-of-00002.parquet"]
    assert len(uniform) == 16 and {r["generation_round"] for r in uniform} == {1}
    assert [(r["round"], r["candidates"]) for r in manifest["rounds"]] == [(1, 16)]
    by_index = {(r["prompt_id"], r["sample_index"]): (r["candidate_id"], r["text"]) for r in uniform}
    assert all(by_index[(r["prompt_id"], r["sample_index"])] == (r["candidate_id"], r["text"]) for r in adaptive
               if r["sample_index"] < 4)


def test_a_task_without_constraints_falls_back_to_uniform_spreading_and_says_so(workdir, caplog):
    free = [{**prompt(f"free{i}", f"Tell a story about topic {i}.", "train"), "instruction_ids": [], "kwargs": []}
            for i in range(3)]
    write_prompt_sets(workdir, free, [prompt("e1", "Write about frogs.", "eval")],
                      [prompt("o1", "Write about caves.", "eval_ood")])
    write_params(workdir, "unused", generate={**ADAPTIVE, "candidates_per_prompt": 2, "num_shards": 1,
                                              "adaptive": {"first_round": 1, "rounds": 1}})
    caplog.set_level("INFO", logger="selfsift")
    with chdir(workdir):
        manifest = generate.main(config_module.load("params.yaml"), "iter-001", [])
        rows = read_rows("data/candidates/iter-001")
    assert "no train prompt has constraints the verifier can check, so the adaptive budget is spread uniformly" \
        in caplog.text
    assert sorted((r["prompt_id"], r["sample_index"], r["generation_round"]) for r in rows) == [
        (f"free{i}", j, j + 1) for i in range(3) for j in range(2)]
    assert [(r["round"], r["candidates"]) for r in manifest["rounds"]] == [(1, 3), (2, 3)]
