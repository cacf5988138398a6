"""Hindsight relabeling (issue 15): constraints read off an answer, confirmed by the official checker,
the relabeled rows curate adds, their share cap, decontamination and validation of their prompts."""

import dataclasses
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import config as config_module
from pipelines import curate
from schemas.reasons import CONTAMINATED, OVER_RELABEL_SHARE, RELABELED, SAMPLED
from schemas.records import CANDIDATE, JUDGMENT
from tests.stage_fixtures import chdir, write_params, write_prompt_sets
from transforms.curation import relabel, relabel_share
from transforms.curation import relabel_constraints as rc
from transforms.curation.config import CurateConfig
from transforms.curation.notes import RELABEL_NO_TASK, RELABELED_ROWS
from transforms.curation.plan import CurationPlan
from transforms.curation.relabel import AddRelabeled, RelabelConfig, relabeled_id, task_of
from transforms.curation.relabel_share import allowed_relabeled, cap_relabeled
from transforms.io.parquet_io import read_table, shard_name
from transforms.judges.config import JudgeConfig
from transforms.judges.ifeval_verifier import verify
from transforms.judges.rules import enabled_checks, rule_judgments
from transforms.prompts.instruction_catalog import CATALOG
from transforms.prompts.prompt_builder import build_split, official_conflicts, prompt_id_for

LOWER = "owls hunt at night. they fly without a sound and find mice by hearing alone. is there anything else i can help with?"
UPPER = "OWLS HUNT AT NIGHT. THEY FLY WITHOUT A SOUND AND FIND MICE BY HEARING ALONE."
SHAPED = ('"<<Notes on owls>>\nSECTION 1\n* Owls hunt at night.\n* They fly quietly.\n'
          'SECTION 2\nOwls eat mice, voles and insects. P.S. Owls are birds."')
PLAIN = "Owls hunt at night, and they fly without a sound. Owls find mice by hearing alone."
GARBAGE = ("", "   \n\t", "\x00]]{<<>>", "```json\n{broken", "P.S.", "* ")


@pytest.mark.parametrize("instruction_id, text, expected", [
    ("change_case:english_lowercase", LOWER, {}),
    ("change_case:english_lowercase", PLAIN, None),
    ("change_case:english_capital", UPPER, {}),
    ("change_case:english_capital", PLAIN, None),
    ("length_constraints:number_words", PLAIN, "bound"),
    ("keywords:existence", PLAIN, "keywords"),
    ("keywords:frequency", PLAIN, {"keyword": "owls", "frequency": 2, "relation": "at least"}),
    ("keywords:forbidden_words", PLAIN, "forbidden"),
    ("startend:end_checker", LOWER, {"end_phrase": "is there anything else i can help with?"}),
    ("startend:end_checker", "One single sentence without an end", None),
    ("detectable_format:number_bullet_lists", SHAPED, {"num_bullets": 2}),
    ("detectable_format:number_bullet_lists", PLAIN, None),
    ("punctuation:no_comma", UPPER, {}),
    ("punctuation:no_comma", PLAIN, None),
    ("detectable_format:json_format", '```json\n{"owls": ["barn", "snowy"]}\n```', {}),
    ("detectable_format:json_format", PLAIN, None),
    ("detectable_format:multiple_sections", SHAPED, {"section_spliter": "SECTION", "num_sections": 2}),
    ("detectable_format:multiple_sections", PLAIN, None),
    ("detectable_content:postscript", SHAPED, {"postscript_marker": "P.S."}),
    ("detectable_content:postscript", "Owls hunt.\nP.P.S. they sleep by day", {"postscript_marker": "P.P.S"}),
    ("detectable_format:title", SHAPED, {}),
    ("detectable_format:title", "<< >> no title", None),
    ("startend:quotation", SHAPED, {}),
    ("startend:quotation", '"', None),
])
def test_each_proposer_reads_what_the_answer_does_and_the_checker_agrees(instruction_id, text, expected):
    kwargs = rc.PROPOSERS[instruction_id](text, random.Random(0))
    if expected is None:
        assert kwargs is None or not rc.checker_passes(text, instruction_id, kwargs)
        return
    if expected == "bound":  # PLAIN has 16 words by the checker's count: rounded down for at least, up for less than
        assert kwargs in ({"relation": "at least", "num_words": 10}, {"relation": "less than", "num_words": 20})
    elif expected == "keywords":
        assert kwargs["keywords"] and all(k in PLAIN.lower() for k in kwargs["keywords"])
    elif expected == "forbidden":
        assert len(kwargs["forbidden_words"]) == 2 and not set(kwargs["forbidden_words"]) & set(rc._words(PLAIN))
    else:
        assert kwargs == expected
    assert rc.checker_passes(text, instruction_id, kwargs)


@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_and_empty_answers_yield_nothing_the_checker_rejects(text):
    for propose in rc.PROPOSERS.values():
        kwargs = propose(text, random.Random(1))  # never raises
        if kwargs is not None and text.strip():
            assert isinstance(kwargs, dict)
    found = rc.satisfied(text, random.Random(1))
    assert all(rc.checker_passes(text, t, kw) for t, kw in found.items())
    if not text.strip():
        assert found == {} and rc.satisfied_constraints(text, random.Random(1), 3) == []


def test_proposers_cover_the_catalogs_train_types_and_never_an_ood_only_one():
    assert set(rc.PROPOSERS) == {t.instruction_id for t in CATALOG if not t.ood_only}
    ood_only = {t.instruction_id for t in CATALOG if t.ood_only}
    for seed in range(20):
        for text in (LOWER, UPPER, SHAPED, PLAIN):
            assert not {t for t, _ in rc.satisfied_constraints(text, random.Random(seed), 3)} & ood_only


def test_every_chosen_set_passes_the_official_checker_and_is_compatible():
    official = official_conflicts()
    for seed in range(25):
        for text in (LOWER, UPPER, SHAPED, PLAIN):
            chosen = rc.satisfied_constraints(text, random.Random(seed), 3)
            assert 1 <= len(chosen) <= 3
            ids = [t for t, _ in chosen]
            for i, t in enumerate(ids):
                assert rc.fits([rc.TYPES[o] for o in ids[:i]], rc.TYPES[t], official)
            prompt = rc.prompt_text_for("Write about owls.", chosen, random.Random(seed))
            verdict = verify(text, ids, [json.dumps(k) for _, k in chosen], prompt)
            assert verdict.passed, (text, chosen, verdict)


def test_an_all_lowercase_answer_gets_a_lowercase_prompt_when_the_corpus_rarely_passes_it():
    common = {t: 50 for t in rc.PROPOSERS} | {"change_case:english_lowercase": 0}
    for seed in range(10):
        chosen = rc.satisfied_constraints(LOWER, random.Random(seed), 3, common)
        assert chosen[0] == ("change_case:english_lowercase", {})
        text = rc.prompt_text_for("Write about owls.", chosen, random.Random(seed))
        wordings = rc.TYPES["change_case:english_lowercase"].train_wordings
        assert text.startswith("Write about owls. ") and any(w in text for w in wordings)


def test_the_choice_is_deterministic_for_a_seed():
    runs = [rc.satisfied_constraints(SHAPED, random.Random(7), 3) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    assert len({json.dumps(rc.satisfied_constraints(SHAPED, random.Random(s), 3)) for s in range(10)}) > 1


def test_builtin_prompts_record_their_task():
    for row in build_split("train", 6, seed=3):
        task = task_of(row)
        assert task and row["messages"][-1]["content"].startswith(task + " ")
    assert task_of({"metadata": "{}"}) == task_of({"metadata": "not json"}) == task_of(None) == ""


# --- the curate step, row by row ---

def judged_row(cid, prompt, text, finish="stop"):
    """A row as curate's join assembles it, judged by every rule judge of the default judge config."""
    candidate = {"candidate_id": cid, "prompt_id": prompt["prompt_id"], "text": text, "model": "m",
                 "model_sha256": "0" * 64, "iteration": 1, "sample_index": 0, "seed": 1, "temperature": 0.8,
                 "top_p": 0.95, "max_new_tokens": 64, "prompt_tokens": 9, "completion_tokens": 30,
                 "finish_reason": finish, "origin": SAMPLED, "parent_candidate_id": ""}
    return candidate, rule_judgments(candidate, {prompt["prompt_id"]: prompt}, enabled_checks(JudgeConfig()))


def train_prompt(pid, task, constraint="punctuation:no_comma", kwargs="{}", metadata=None, text=None):
    text = text or f"{task} Do not use any commas in your answer."
    return {"prompt_id": pid, "messages": [{"role": "user", "content": text}], "instruction_ids": [constraint],
            "kwargs": [kwargs], "source": "test", "split": "train",
            "metadata": json.dumps({"task": task} if metadata is None else metadata)}


def test_a_failed_answer_is_relabeled_with_its_parent_deterministically(tmp_path):
    prompt = train_prompt("p1", "Write about owls.")
    candidate, judgments = judged_row("c1", prompt, PLAIN + " They nest in old barns and hollow trees.")
    row = {**candidate, "messages": prompt["messages"], "instruction_ids": prompt["instruction_ids"],
           "kwargs": prompt["kwargs"], "judgments": [{k: j[k] for k in ("judge", "score", "passed", "detail")}
                                                     for j in judgments], "score": 0.0}
    config = config_module.load(write_params(tmp_path, "unused", curate={"relabel": {"enabled": True}}))
    plan = CurationPlan(config.curate, seed=5, judges=config.judge, max_constraints=3)
    outputs = []
    for _ in range(2):
        step = AddRelabeled(plan)
        step.setup()
        outputs.append([getattr(out, "value", out) for out in step.process(row, {"p1": prompt}, {})])
    assert outputs[0] == outputs[1]
    passed_on, note, added = outputs[0]
    assert passed_on == row and note == (RELABELED_ROWS, relabeled_id("c1"))
    assert added["origin"] == RELABELED and added["parent_candidate_id"] == "c1" and added["text"] == row["text"]
    text = added["messages"][-1]["content"]
    assert text.startswith("Write about owls. ") and added["prompt_id"] == prompt_id_for("train", text)
    assert "punctuation:no_comma" not in added["instruction_ids"]  # the answer has commas
    verifier = next(j for j in added["judgments"] if j["judge"] == "ifeval_verifier")
    assert verifier["passed"] and added["score"] == 1.0
    assert {j["judge"] for j in added["judgments"]} == {j["judge"] for j in row["judgments"]}

    passing = {**row, "judgments": [{**j, "passed": True, "score": 1.0} for j in row["judgments"]]}
    assert list(step.process(passing, {"p1": prompt}, {})) == [passing]  # a passing answer is only passed on


def test_the_share_cap_keeps_a_seeded_subset_and_rejects_the_rest_with_its_reason():
    assert allowed_relabeled(6, 3, 0.25) == 2 and allowed_relabeled(6, 1, 0.25) == 1
    assert allowed_relabeled(0, 5, 0.25) == 0 and allowed_relabeled(3, 5, 1.0) == 5 and allowed_relabeled(9, 5, 0) == 0
    rows = [{"candidate_id": f"s{i}", "origin": SAMPLED} for i in range(6)]
    rows += [{"candidate_id": f"r{i}", "origin": RELABELED} for i in range(5)]
    out = list(cap_relabeled(rows, 0.25, seed=1))
    kept = [r for r in out if isinstance(r, dict)]
    dropped = [r.value for r in out if not isinstance(r, dict)]
    assert len(kept) == 8 and sum(r["origin"] == RELABELED for r in kept) == 2
    assert len(dropped) == 3 and {r["reason"] for r in dropped} == {OVER_RELABEL_SHARE}
    again = [r["candidate_id"] for r in cap_relabeled(list(reversed(rows)), 0.25, seed=1) if isinstance(r, dict)]
    assert sorted(again) == sorted(r["candidate_id"] for r in kept)


def test_relabeling_is_off_by_default_and_refused_under_the_ablation_controls(tmp_path):
    default = CurateConfig()
    assert not relabel.enabled(CurationPlan(default)) and relabel_share.STEP.build(CurationPlan(default)) is None
    on = dataclasses.replace(default, relabel=RelabelConfig(enabled=True))
    assert relabel.enabled(CurationPlan(on)) and relabel_share.STEP.build(CurationPlan(on)) is not None
    write_params(tmp_path, "unused", curate={"relabel": {"enabled": True}, "control": "no_filter",
                                             "control_rows": {"iter-001": 5, "iter-002": 5}})
    with pytest.raises(config_module.ConfigError, match=r"curate.relabel.enabled needs curate.control: none"):
        config_module.load(tmp_path / "params.yaml")


def test_relabeling_is_refused_while_a_judge_curate_cannot_rerun_decides(tmp_path):
    write_params(tmp_path, "unused", judge={"llm_judge": {"enabled": True, "model": "models/base"}},
                 curate={"combine": "weighted", "weights": {"ifeval_verifier": 1.0, "llm_judge": 1.0},
                         "relabel": {"enabled": True}})
    with pytest.raises(config_module.ConfigError, match=r"curate.weights.llm_judge > 0, but curate.relabel.enabled"):
        config_module.load(tmp_path / "params.yaml")
    write_params(tmp_path, "unused", curate={"relabel": {"max_share": 1.5}})
    with pytest.raises(config_module.ConfigError, match=r"curate.relabel.max_share must be in \[0, 1\]"):
        config_module.load(tmp_path / "params.yaml")


# --- the curate stage ---

LONG_TASK = "Describe the old stone bridge that crosses the slow river near the village at dawn in early spring."
PASSING = [  # (topic, an answer without commas)
    ("owls", "Owls hunt at night and fly without a sound so mice rarely hear them coming through the dark fields."),
    ("bats", "Bats sleep upside down in caves during the day and wake at dusk to catch moths over quiet ponds."),
    ("frogs", "Frogs lay their eggs in still water where tadpoles hatch and slowly grow legs before leaving home."),
    ("kites", "A kite needs steady wind and a long string and the patience to let it climb above the tall trees."),
    ("tides", "Tides rise and fall twice a day because the moon pulls the oceans toward it as the earth turns."),
    ("bread", "Good bread needs flour and water and salt and yeast and a warm kitchen where the dough can rest."),
]
FAILING = [  # (prompt id, task recorded in metadata, an answer with commas)
    ("f0", "Write about glaciers.", "Glaciers are rivers of ice, and they move slowly downhill. Over centuries, they carve "
                                    "deep valleys into solid rock. Is there anything else I can help with?"),
    ("f1", "Write about comets.", "Comets are balls of ice, dust and rock that orbit the sun. When they come close, "
                                  "their tails glow brightly across the night sky for weeks."),
    ("f2", "Write about beavers.", "beavers build dams from sticks, mud and stones, and their ponds give homes to "
                                   "fish, birds and insects all through the warm summer months."),
    ("f3", LONG_TASK, "The bridge is grey, mossy and very old, and mist hangs over the water while the first "
                      "carts roll slowly across it toward the market square."),
]
NO_TASK = ("n0", "Penguins huddle together, taking turns in the middle, so the whole colony stays warm through "
                 "the long polar winter nights.")


def stage_inputs():
    prompts, candidates, judgments = [], [], []
    for i, (topic, answer) in enumerate(PASSING):
        prompts.append(train_prompt(f"t{i}", f"Write about {topic}."))
        candidate, verdicts = judged_row(f"s{i}", prompts[-1], answer)
        candidates.append(candidate)
        judgments += verdicts
    for pid, task, answer in FAILING:
        text = "Describe the bridge. Do not use any commas in your answer." if task == LONG_TASK else None
        prompts.append(train_prompt(pid, task, text=text))
        candidate, verdicts = judged_row(f"c-{pid}", prompts[-1], answer)
        candidates.append(candidate)
        judgments += verdicts
    prompts.append(train_prompt(NO_TASK[0], "Write about penguins.", metadata={}))
    candidate, verdicts = judged_row("c-n0", prompts[-1], NO_TASK[1])
    return prompts, candidates + [candidate], judgments + verdicts


def write_folder(root, kind, rows, schema):
    out = root / "data" / kind / "iter-001"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / shard_name(0, 1))


def test_the_curate_stage_adds_relabeled_rows_conserves_every_row_and_caps_their_share(tmp_path):
    write_params(tmp_path, "unused", iterations={"iter-001": {"generator": "base"}},
                 prompts={"max_constraints": 3}, curate={"relabel": {"enabled": True, "max_share": 0.25}})
    prompts, candidates, judgments = stage_inputs()
    eval_prompt = {**train_prompt("e0", "x", text=f"{LONG_TASK} Answer with at least 10 words."), "split": "eval"}
    write_prompt_sets(tmp_path, prompts, [eval_prompt], [])
    write_folder(tmp_path, "candidates", candidates, CANDIDATE)
    write_folder(tmp_path, "judgments", judgments, JUDGMENT)
    (tmp_path / "models/base").mkdir(parents=True)
    (tmp_path / "models/base/model.safetensors").write_bytes(b"weights")  # the manifest records their hash
    config = config_module.load(tmp_path / "params.yaml")
    with chdir(tmp_path):
        manifest = curate.main(config, "iter-001", [])
        kept = read_table("data/shards/iter-001", None).to_pylist()
        rejected = read_table("data/rejected/iter-001", None).to_pylist()

    assert manifest["notes"][RELABELED_ROWS]["count"] == len(FAILING)
    assert manifest["notes"][RELABEL_NO_TASK] == {"count": 1, "example": "c-n0"}
    assert manifest["rows_in"] == len(candidates) + len(FAILING) == len(kept) + len(rejected)
    assert manifest["funnel"][0]["in"] == manifest["rows_in"] and manifest["funnel"][-1]["out"] == len(kept)
    ids = [r["candidate_id"] for r in kept + rejected]
    assert len(ids) == len(set(ids))  # every row leaves exactly once
    assert set(ids) == {c["candidate_id"] for c in candidates} | {relabeled_id(f"c-{pid}") for pid, _, _ in FAILING}

    relabeled_kept = [r for r in kept if r["origin"] == RELABELED]
    assert len(relabeled_kept) == 2 and len(relabeled_kept) / len(kept) <= 0.25
    for row in relabeled_kept:
        parent = next(c for c in candidates if c["candidate_id"] == row["parent_candidate_id"])
        assert row["text"] == parent["text"] and row["candidate_id"] == relabeled_id(parent["candidate_id"])
        assert row["prompt_id"] == prompt_id_for("train", row["messages"][-1]["content"])
        assert verify(row["text"], row["instruction_ids"], row["kwargs"], row["messages"][-1]["content"]).passed
    reasons = {r["candidate_id"]: (r["reason"], r["reason_detail"]) for r in rejected}
    assert reasons[relabeled_id("c-f3")][0] == CONTAMINATED
    assert reasons[relabeled_id("c-f3")][1] == "relabeled prompt shares a 13-gram with eval:e0"
    assert [r for r, _ in reasons.values()].count(OVER_RELABEL_SHARE) == 1
    assert manifest["rejected"][OVER_RELABEL_SHARE] == 1
    assert all(reasons[f"c-{pid}"][0] == "below_threshold" for pid, _, _ in FAILING)


def test_validation_catches_a_relabeled_prompt_equal_to_an_eval_prompt(tmp_path):
    from pipelines import validate
    from tests.stage_fixtures import shard_row
    from tests.test_validate import EVAL, OOD, TRAIN, write_iteration

    write_params(tmp_path, "unused", generate={"candidates_per_prompt": 1})
    write_prompt_sets(tmp_path, TRAIN, EVAL, OOD)
    relabeled_prompt = {**EVAL[0], "prompt_id": prompt_id_for("train", EVAL[0]["messages"][-1]["content"])}
    row = {**shard_row(relabeled_id("c0"), relabeled_prompt, "frogs croak"), "origin": RELABELED,
           "parent_candidate_id": "c0"}
    write_iteration(tmp_path, [row])
    with chdir(tmp_path), pytest.raises(validate.ValidationFailed, match="shards.not_eval_prompt_text"):
        validate.main(config_module.load("params.yaml"), "iter-001")
