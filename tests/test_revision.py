"""Revision with the checker's feedback (stage revise): which failed answers are revised, the feedback turn in the
checkers' own words, stable ids derived from the parent, a tiny stage run, and curate over sampled + revised
answers accounting for every row."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.ml.inference.base import ModelHandler

from pipelines import config as config_module
from pipelines.graphs import judging, revision
from pipelines.run.runtime import run_pipeline
from pipelines.stages import curate, judge
from schemas.records import CANDIDATE
from tests.records import candidate
from tests.stage_fixtures import chdir, prompt, write_params, write_prompt_sets
from transforms.curation.config import CurateConfig
from transforms.curation.plan import CurationPlan
from transforms.generation.candidates import Lineage, expand_prompt
from transforms.generation.hf_generation import Generation, SamplingParams
from transforms.io.parquet_io import read_rows, shard_name
from transforms.revision.config import ReviseConfig
from transforms.revision.feedback import INTRO, failed_instructions, feedback_turn
from transforms.revision.requests import expand_failure, to_revised_candidate
from transforms.revision.selection import to_revise
from transforms.settings import ConfigError

NO_COMMA, LOWERCASE, QUOTATION = "punctuation:no_comma", "change_case:english_lowercase", "startend:quotation"
LINEAGE = Lineage(model="models/base", model_sha256="ab" * 32, iteration=1, seed=1234,
                  sampling=SamplingParams(0.8, 0.95, 0, 16))


def row(cid, strict, score=None, text="An answer, with words.", finish="stop", error="", prompt_id="p1"):
    """A judged row whose verifier found `strict` (one verdict per constraint of the prompt)."""
    ids = [NO_COMMA, LOWERCASE, QUOTATION][:len(strict)]
    detail = {"instruction_ids": ids, "strict": strict, "loose": strict, **({"error": error} if error else {})}
    passed = all(strict) and not error
    score = sum(strict) / len(strict) if score is None else score
    return {"candidate_id": cid, "prompt_id": prompt_id, "text": text, "finish_reason": finish, "prompt_tokens": 9,
            "generation_round": 2,
            "messages": [{"role": "user", "content": "Write about owls."}], "instruction_ids": ids,
            "kwargs": ["{}"] * len(ids), "score": score,
            "judgments": [{"judge": "ifeval_verifier", "score": score, "passed": passed, "detail": json.dumps(detail)}]}


PLAN = CurationPlan(CurateConfig())


def test_feedback_names_each_failed_instruction_in_the_checkers_words():
    turn = feedback_turn(row("c1", [False, True, False]))
    assert turn.startswith(INTRO)
    assert "- In your entire response, refrain from the use of any commas." in turn
    assert "- Wrap your entire response with double quotation marks." in turn
    assert "lowercase" not in turn  # followed: not named
    assert failed_instructions(row("c1", [False, True, False])) == [(NO_COMMA, {}), (QUOTATION, {})]


def test_no_feedback_without_the_verifiers_verdict_on_these_instructions():
    other = row("c1", [False, True])
    other["instruction_ids"] = [NO_COMMA]  # a verdict on other instructions than the prompt's
    other["kwargs"] = ["{}"]
    assert failed_instructions(other) == []
    assert failed_instructions({**row("c1", [False]), "judgments": []}) == []


def test_selection_picks_the_failed_usable_answers_under_the_caps():
    rows = [row("a", [False, True], score=0.5), row("b", [False, False], score=0.0), row("c", [True, False]),
            row("len", [False, False], finish="length"), row("empty", [False, False], text="  "),
            row("err", [False, False], error="ValueError: bad kwargs")]
    every = ReviseConfig(max_per_prompt=10, only_unsolved=False)
    assert [r["candidate_id"] for r in to_revise(rows, every, PLAN)] == ["a", "c", "b"]  # best score first, then id
    assert [r["candidate_id"] for r in to_revise(rows, ReviseConfig(max_per_prompt=1), PLAN)] == ["a"]
    solved = [*rows, row("ok", [True, True])]
    assert to_revise(solved, ReviseConfig(max_per_prompt=10, only_unsolved=True), PLAN) == []
    assert len(to_revise(solved, every, PLAN)) == 3
    assert to_revise(rows, every, CurationPlan(CurateConfig(control="no_filter"))) == []


def test_revision_ids_are_stable_distinct_and_derived_from_the_parent():
    def ids(parent, k=3):
        return [meta["candidate_id"] for meta, _ in expand_failure(row(parent, [False]), k, LINEAGE)]

    assert ids("c1") == ids("c1") and len(set(ids("c1"))) == 3
    assert not set(ids("c1")) & set(ids("c2"))
    sampled = [meta["candidate_id"] for meta, _ in expand_prompt(
        {"prompt_id": "p1", "messages": [{"role": "user", "content": "x"}]}, 3, LINEAGE)]
    assert not set(ids("c1")) & set(sampled)
    seeds = [meta["seed"] for meta, _ in expand_failure(row("c1", [False]), 3, LINEAGE)]
    assert len(set(seeds)) == 3

    meta, request = next(expand_failure(row("c1", [False], text="Owls, at night."), 1, LINEAGE))
    roles = [role for role, _ in request.messages]
    assert roles == ["user", "assistant", "user"] and request.messages[1][1] == "Owls, at night."
    assert "commas" in request.messages[2][1] and request.key == meta["candidate_id"]
    revised = to_revised_candidate(meta, Generation("Owls hunt at night.", 30, 5, "stop"), LINEAGE)
    assert (revised["origin"], revised["parent_candidate_id"], revised["prompt_id"]) == ("revised", "c1", "p1")
    assert revised["generation_round"] == 2  # the round of the answer it revises
    assert set(revised) == set(CANDIDATE.names)


def test_revise_needs_the_judge_policy(tmp_path):
    write_params(tmp_path, "unused", revise={"enabled": True}, curate={"control": "no_filter"},
                 iterations={"iter-001": {"generator": "base"}})
    with pytest.raises(ConfigError, match="revise.enabled needs curate.control: none"):
        config_module.load(tmp_path / "params.yaml")


# The stage: hand-written candidates of two prompts, judged by the rules and the tiny model as LLM judge.
TRAIN = [prompt("t1", "Write about owls.", "train"), prompt("t2", "Write about bats.", "train")]


CANDIDATES = [
    candidate("c1", TRAIN[0], "Owls hunt at night, and they see well"),   # a comma: fails, revised
    candidate("c2", TRAIN[0], "Owls, owls, owls"),                          # fails too; lower score? same: by id
    candidate("c3", TRAIN[1], "Bats are mammals that fly at night"),       # passes: t2 is solved
    candidate("c4", TRAIN[1], "Bats, mammals"),                             # fails, but t2 is solved
]


def write_candidates(root, rows, folder="candidates"):
    out = root / "data" / folder / "iter-001"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=CANDIDATE), out / shard_name(0, 1))
    return out


@pytest.fixture
def workdir(tmp_path, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "models/base")
    write_params(tmp_path, "unused", iterations={"iter-001": {"generator": "base"}},
                 generate={"max_new_tokens": 8, "dtype": "float32", "device": "cpu", "num_shards": 2},
                 judge={"num_shards": 2, "heuristics": {"min_words": 1},
                        "llm_judge": {"enabled": True, "model": "models/base", "max_input_tokens": 160,
                                      "dtype": "float32", "device": "cpu", "calibration_sample": 2}},
                 revise={"enabled": True, "candidates_per_failure": 2},
                 curate={"num_shards": 1})
    write_prompt_sets(tmp_path, TRAIN, [prompt("e1", "Write about frogs.", "eval")],
                      [prompt("o1", "Write about caves.", "eval_ood")])
    write_candidates(tmp_path, CANDIDATES)
    return tmp_path


def test_curate_revises_judges_the_revisions_and_accounts_for_every_row(workdir):
    config = config_module.load(workdir / "params.yaml")
    with chdir(workdir):
        judge.main(config, "iter-001", [])
        manifest = curate.main(config, "iter-001", [])
        revisions = read_rows("data/revisions/iter-001")
        judgments = read_rows("data/revision_judgments/iter-001")
        rejected = read_rows("data/rejected/iter-001")
        kept = read_rows("data/shards/iter-001")
    # t1's best failed answer (c1 and c2 tie at score 0: c1 by id), twice; t2 is solved
    revised = manifest["revision"]
    assert revised["rows"] == len(revisions) == 2 and revised["parents"] == 1
    assert {(r["origin"], r["parent_candidate_id"], r["prompt_id"]) for r in revisions} == {("revised", "c1", "t1")}
    assert len({r["candidate_id"] for r in revisions}) == 2
    by_judge = {}
    for j in judgments:
        by_judge.setdefault(j["judge"], set()).add(j["candidate_id"])
    ids = {r["candidate_id"] for r in revisions}
    assert by_judge["ifeval_verifier"] == ids and by_judge["heuristic_length"] == ids
    assert by_judge["llm_judge"] <= ids and by_judge["llm_judge"]  # its calibration sample, as in stage judge
    # every sampled and revised row leaves curate exactly once
    assert manifest["rows_in"] == len(CANDIDATES) + 2
    assert manifest["rows_out"] + sum(manifest["rejected"].values()) == manifest["rows_in"]
    left = [r["candidate_id"] for r in kept + rejected]
    assert sorted(left) == sorted([c["candidate_id"] for c in CANDIDATES] + list(ids))
    assert {r["origin"] for r in kept + rejected if r["candidate_id"] in ids} == {"revised"}
    assert manifest["funnel_per_origin"]["revised"][0]["in"] == 2
    assert sum(f[0]["in"] for f in manifest["funnel_per_origin"].values()) == manifest["rows_in"]


def test_a_passing_revision_trains_the_original_prompt(workdir, monkeypatch):
    """Revisions written by hand (the tiny model cannot write a passing one), in place of the model's: judged with
    the judge stage's graph, a passing one is kept as prompt -> revised answer, single turn."""
    config = config_module.load(workdir / "params.yaml")
    layout = config.layout
    rows = [candidate("r1", TRAIN[0], "Owls hunt at night and they see well", origin="revised", parent_candidate_id="c1"),
            candidate("r2", TRAIN[0], "Owls hunt, at night", origin="revised", parent_candidate_id="c1")]

    def by_hand(config, iteration, beam_args):
        write_candidates(workdir, rows, "revisions")
        run_pipeline(judging.graph(config, iteration, source=layout.revisions(iteration),
                                   target=layout.revision_judgments(iteration)), beam_args)
        return {"rows": 2, "parents": 1, "model_sha256": ""}

    monkeypatch.setattr(revision, "revise", by_hand)
    with chdir(workdir):
        judge.main(config, "iter-001", [])
        manifest = curate.main(config, "iter-001", [])
        kept = {r["candidate_id"]: r for r in read_rows("data/shards/iter-001")}
        rejected = {r["candidate_id"]: r["reason"] for r in read_rows("data/rejected/iter-001")}
    assert kept["r1"]["origin"] == "revised" and kept["r1"]["parent_candidate_id"] == "c1"
    assert kept["r1"]["messages"] == TRAIN[0]["messages"]  # the original prompt, not the revision conversation
    assert rejected["r2"] == "below_threshold"
    assert manifest["rows_in"] == len(CANDIDATES) + 2 == manifest["rows_out"] + sum(manifest["rejected"].values())


def test_revision_off_writes_nothing_and_ignores_an_earlier_runs_revisions(workdir):
    write_params(workdir, "unused", iterations={"iter-001": {"generator": "base"}}, revise={"enabled": False},
                 judge={"llm_judge": {"enabled": False}, "heuristics": {"min_words": 1}}, curate={"num_shards": 1})
    config = config_module.load(workdir / "params.yaml")
    with chdir(workdir):
        judge.main(config, "iter-001", [])
        before = curate.main(config, "iter-001", [])
        assert not (workdir / "data/revisions").exists() and not (workdir / "data/revision_judgments").exists()
        write_candidates(workdir, [candidate("r1", TRAIN[0], "Owls hunt at night", origin="revised", parent_candidate_id="c1")],
                         "revisions")  # left by a run with revision on
        after = curate.main(config, "iter-001", [])
    assert "revision" not in before and before["rows_in"] == len(CANDIDATES)
    assert {k: after[k] for k in ("rows_in", "rows_out", "rejected", "funnel", "shards")} == \
        {k: before[k] for k in ("rows_in", "rows_out", "rejected", "funnel", "shards")}


class RecordsOrder(ModelHandler):
    """The handler revision builds, appending the keys of each batch it is handed to a file (the handler runs on a
    copy Beam unpickled, so a list would not come back)."""

    def __init__(self, inner, path):
        super().__init__()
        self._inner, self._path = inner, path

    def load_model(self):
        return self._inner.load_model()

    def run_inference(self, batch, model, inference_args=None):
        with open(self._path, "a") as f:
            f.write("".join(request.key + "\n" for request in batch))
        return self._inner.run_inference(batch, model, inference_args)

    def batch_elements_kwargs(self):
        return self._inner.batch_elements_kwargs()


def test_revision_requests_reach_the_model_in_candidate_order(workdir, monkeypatch):
    """Batches decide the numerics in bfloat16: after revise's grouping, the same requests must meet the model in
    the same order in every run, whatever order the grouping left them in."""
    train = [prompt(f"t{i}", f"Write about animal number {i}.", "train") for i in range(8)]
    write_prompt_sets(workdir, train, [prompt("e1", "Write about frogs.", "eval")],
                      [prompt("o1", "Write about caves.", "eval_ood")])
    write_candidates(workdir, [candidate(f"c{i}", p, "Animals, all of them") for i, p in enumerate(train)])
    log = workdir / "batches.txt"
    build = revision.generation_handler
    monkeypatch.setattr(revision, "generation_handler", lambda *a, **k: RecordsOrder(build(*a, **k), str(log)))
    config = config_module.load(workdir / "params.yaml")
    with chdir(workdir):
        judge.main(config, "iter-001", [])
        revised = curate.main(config, "iter-001", [])["revision"]
    keys = log.read_text().split()
    assert revised["rows"] == len(keys) == 16  # 8 failed answers, 2 revisions each
    assert keys == sorted(keys)
