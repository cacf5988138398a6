import dataclasses
import json
import tempfile

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Candidate
from tests.records import record
from transforms.curation.chain import CHAIN, REASONS, funnel
from transforms.curation.config import CurateConfig
from transforms.curation.curate import Curate, first_failure
from transforms.curation.decontamination import DecontaminationConfig, build_index
from transforms.curation.near_dedup import NearDedupConfig
from transforms.curation.notes import JUDGMENTS_WITHOUT_CANDIDATE, MEANING
from transforms.curation.plan import CurationPlan
from transforms.curation.preference_pairs import PairsConfig
from transforms.curation.steps import RowFilter
from transforms.judges.config import JudgeConfig
from transforms.judges.heuristics import HeuristicsConfig
from transforms.judges.registry import HEURISTICS
from transforms.judges.rules import enabled_checks, rule_judgments

PROMPTS = [
    {"prompt_id": "p1", "messages": [{"role": "user", "content": "one"}], "instruction_ids": ["punctuation:no_comma"],
     "kwargs": ["{}"]},
    {"prompt_id": "p2", "messages": [{"role": "user", "content": "two"}], "instruction_ids": ["punctuation:no_comma"],
     "kwargs": ["{}"]},
    {"prompt_id": "p3", "messages": [{"role": "user", "content": "three"}], "instruction_ids": [], "kwargs": []},
]
EVAL_TEXT = "write a limerick about the quiet harbor at dawn and do not use any commas in your reply at all"


def candidate(cid, prompt_id, text, finish="stop"):
    return record(Candidate, candidate_id=cid, prompt_id=prompt_id, text=text, finish_reason=finish, prompt_tokens=5,
                  origin="sampled", generation_round=1)


def judgment(cid, judge, score, passed=None, error=None):
    detail = {"error": error} if error else {}
    return {"candidate_id": cid, "judge": judge, "score": score, "passed": score == 1.0 if passed is None else passed,
            "detail": json.dumps(detail)}


def judged(cid, verifier_score, failing=(), error=None, llm_score=None):
    """The verifier's judgment, every heuristic's (passing unless named in `failing`), optionally an LLM judge's."""
    out = [judgment(cid, "ifeval_verifier", verifier_score, error=error)]
    out += [judgment(cid, h.name, 0.0 if h.name in failing else 1.0) for h in HEURISTICS]
    if llm_score is not None:
        out.append(judgment(cid, "llm_judge", llm_score, passed=llm_score >= 0.5))
    return out


LONG_ANSWER = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma"
CANDIDATES = [
    candidate("a1", "p1", "good answer"),
    candidate("a2", "p1", "Good   Answer"),            # exact duplicate of a1 after normalization
    candidate("a3", "p1", "another good one"),
    candidate("a4", "p1", "a third good one"),         # over the best-of-2 cap for p1
    candidate("a5", "p2", LONG_ANSWER),
    candidate("a6", "p2", LONG_ANSWER + " tau"),       # near-duplicate of a5
    candidate("b1", "p2", "too weak"),                 # below threshold
    candidate("b2", "p2", "cut off mid", "length"),    # truncated (heuristic)
    candidate("b3", "p2", "   "),                      # empty
    candidate("b4", "p2", "checker broke"),            # judge error
    candidate("b5", "p2", "never judged"),             # no judgment
    candidate("b6", "p2", "spam spam spam spam"),      # repetitive (heuristic)
    candidate("b7", "p2", "Sure: " + EVAL_TEXT),       # contaminated
    candidate("c1", "p3", "no constraints to check"),  # unverifiable
    candidate("c2", "p3", "", "prompt_too_long"),      # never generated
]
JUDGMENTS = [j for c in ("a1", "a2", "a3", "c1", "c2", "b7") for j in judged(c, 1.0)] + [
    *judged("a4", 1.0), *judged("a5", 1.0), *judged("a6", 1.0),
    *judged("b1", 0.0), *judged("b2", 1.0, failing={"heuristic_truncation"}), *judged("b3", 0.0, failing={"heuristic_empty"}),
    *judged("b4", 0.0, error="LookupError: punkt"), *judged("b6", 1.0, failing={"heuristic_repetition"}),
    judgment("orphan", "ifeval_verifier", 1.0)]
PLAN = CurationPlan(
    CurateConfig(weights={"ifeval_verifier": 1.0}, max_per_prompt=2, near_dedup=NearDedupConfig(ngram=3, threshold=0.5),
                 decontamination=DecontaminationConfig(ngram=13), pairs=PairsConfig(min_margin=0.5)),
    decontamination_index=build_index([("eval:e1", EVAL_TEXT)], 13))
NO_DEDUP = {"near_dedup": NearDedupConfig(enabled=False), "decontamination": DecontaminationConfig(enabled=False)}


def simple_plan(**curate) -> CurationPlan:
    """The verifier decides; no near dedup and no decontamination."""
    return CurationPlan(CurateConfig(**{**NO_DEDUP, **curate}))
EXPECTED = {"a1": None, "a3": None, "a5": None, "a2": "duplicate", "a6": "near_duplicate",
            "a4": "over_prompt_cap", "b1": "below_threshold", "b2": "truncated", "b3": "empty", "b4": "judge_error",
            "b5": "unjudged", "b6": "repetitive", "b7": "contaminated", "c1": "unverifiable", "c2": "prompt_too_long"}


def run_curate(p, candidates, judgments, plan=PLAN):
    return (p | "C" >> beam.Create(candidates), p | "J" >> beam.Create(judgments),
            p | "P" >> beam.Create(PROMPTS)) | Curate(plan)


def ids(pcoll, label):
    return pcoll | f"Ids{label}" >> beam.Map(lambda r: r["candidate_id"])


def test_every_candidate_kept_or_rejected_once_with_its_reason():
    with TestPipeline() as p:
        out = run_curate(p, CANDIDATES, JUDGMENTS)
        rejected = out["rejected"] | "Reasons" >> beam.Map(lambda r: (r["candidate_id"], r["reason"]))
        assert_that(ids(out["kept"], "kept"), equal_to([k for k, v in EXPECTED.items() if v is None]), label="kept")
        assert_that(rejected, equal_to([(k, v) for k, v in EXPECTED.items() if v]), label="rejected")

        def check_kept(rows):
            by_id = {r["candidate_id"]: r for r in rows}
            assert by_id["a1"]["dedup_cluster_size"] == 2  # a1 stands for itself and its exact duplicate a2
            assert by_id["a5"]["dedup_cluster_size"] == 2 and by_id["a5"]["dedup_cluster"] == "a5"
            assert by_id["a1"]["keep_reason"].startswith("passed all of ifeval_verifier")
            assert by_id["a1"]["messages"] == PROMPTS[0]["messages"]
            assert len(by_id["a1"]["judgments"]) == 1 + len(HEURISTICS)

        def check_details(rows):
            detail = {r["candidate_id"]: r["reason_detail"] for r in rows}
            assert detail["b4"] == "ifeval_verifier: LookupError: punkt"
            assert detail["b7"] == "shares a 13-gram with eval:e1"
            assert detail["a6"] == "similar to kept a5"
            assert detail["b5"] == "no judgment from ifeval_verifier"

        assert_that(out["kept"], check_kept, label="kept rows")
        assert_that(out["rejected"], check_details, label="rejection details")


def test_judgments_without_their_candidate_are_counted_with_an_example():
    judgments = [*JUDGMENTS, *judged("ghost", 1.0)]  # "orphan" has one judgment, "ghost" one per judge
    with TestPipeline() as p:
        out = run_curate(p, CANDIDATES, judgments)
        assert_that(out["notes"], equal_to([{
            **{kind: {"count": 0, "example": None} for kind in MEANING},
            JUDGMENTS_WITHOUT_CANDIDATE: {"count": 2 + len(HEURISTICS), "example": "ghost"}}]))


def test_the_stage_refuses_judgments_made_for_other_candidates(tmp_path):
    from pipelines import config as config_module
    from pipelines.stages.curate import MismatchedJudgments, check_orphans
    from tests.stage_fixtures import write_params

    write_params(tmp_path, "unused")
    config = config_module.load(tmp_path / "params.yaml")
    check_orphans({"count": 1, "example": "c7"}, 100, config, "iter-001")  # counted and logged, not refused
    with pytest.raises(MismatchedJudgments, match=r"2 of 100 judgments in data/judgments/iter-001 name a candidate_id "
                                                  r"that is not in data/candidates/iter-001 \(e.g. c7\).*"
                                                  r"selfsift judge --iteration iter-001"):
        check_orphans({"count": 2, "example": "c7"}, 100, config, "iter-001")


def test_every_candidate_fails_keeps_nothing_and_counts_all():
    judgments = [j for c in CANDIDATES for j in judged(c["candidate_id"], 0.0)]
    with TestPipeline() as p:
        out = run_curate(p, CANDIDATES, judgments)
        assert_that(out["kept"], equal_to([]), label="kept")
        assert_that(out["rejected"] | beam.combiners.Count.Globally(), equal_to([len(CANDIDATES)]), label="count")
        assert_that(out["pairs"], equal_to([]), label="no pairs without a passing answer")


def test_ties_and_k_of_one_keep_best_score_then_smallest_id():
    cands = [candidate("z9", "p1", "x y"), candidate("z1", "p1", "x z"), candidate("z5", "p1", "x w")]
    judgments = [j for c in ("z9", "z1", "z5") for j in judged(c, 1.0)]
    with TestPipeline() as p:
        out = run_curate(p, cands, judgments, simple_plan(max_per_prompt=1))
        assert_that(ids(out["kept"], "k"), equal_to(["z1"]))


def test_weighted_policy_combines_judges_and_records_the_rest():
    cands = [candidate("w1", "p1", "first"), candidate("w2", "p1", "second"), candidate("w3", "p1", "third")]
    judgments = [*judged("w1", 1.0, llm_score=0.2), *judged("w2", 0.0, llm_score=1.0), *judged("w3", 1.0, llm_score=0.9)]
    plan = simple_plan(combine="weighted", weights={"ifeval_verifier": 1.0, "llm_judge": 1.0}, min_score=0.7,
                       max_per_prompt=5)
    with TestPipeline() as p:
        out = run_curate(p, cands, judgments, plan)
        scored = out["kept"] | beam.Map(lambda r: (r["candidate_id"], round(r["score"], 3)))
        assert_that(scored, equal_to([("w3", 0.95)]), label="kept")  # w1: 0.6, w2: 0.5 are below 0.7


def test_type_cap_keeps_rows_that_carry_a_rare_type_and_top_fraction_cuts_the_rest():
    prompts = [{"prompt_id": f"q{i}", "messages": [{"role": "user", "content": f"q{i}"}],
                "instruction_ids": types, "kwargs": ["{}"] * len(types)}
               for i, types in enumerate([["easy"], ["easy"], ["easy"], ["easy", "rare"]])]
    cands = [candidate(f"t{i}", f"q{i}", f"answer number {i}") for i in range(4)]
    judgments = [j for i in range(4) for j in judged(f"t{i}", 1.0)]
    plan = simple_plan(max_per_prompt=1, max_per_instruction_type=2, top_fraction=0.5)
    with TestPipeline() as p:
        out = (p | "C" >> beam.Create(cands), p | "J" >> beam.Create(judgments), p | "P" >> beam.Create(prompts)) \
            | Curate(plan)
        reasons = out["rejected"] | beam.Map(lambda r: (r["candidate_id"], r["reason"]))
        # easy is capped at 2 (t0, t1); t2 is over the cap; t3 still counts because "rare" has room;
        # then the top half of the 3 balanced rows (ceil 1.5 = 2) stays.
        assert_that(ids(out["kept"], "k"), equal_to(["t0", "t1"]), label="kept")
        assert_that(reasons, equal_to([("t2", "over_type_cap"), ("t3", "below_top_fraction")]), label="rejected")


def test_preference_pair_is_best_passing_against_worst_scored_with_margin():
    cands = [candidate("p1a", "p1", "all right"), candidate("p1b", "p1", "half right"),
             candidate("p1c", "p1", "wrong"), candidate("p1d", "p1", ""),  # empty: never a pair member
             candidate("p2a", "p2", "lonely answer")]  # a prompt with a single candidate: no pair
    judgments = [*judged("p1a", 1.0), *judged("p1b", 0.5), *judged("p1c", 0.0),
                 *judged("p1d", 0.0, failing={"heuristic_empty"}), *judged("p2a", 1.0)]
    with TestPipeline() as p:
        out = run_curate(p, cands, judgments)
        pairs = out["pairs"] | beam.Map(lambda r: (r["chosen_candidate_id"], r["rejected_candidate_id"], r["margin"],
                                                   r["rejected_reason"], r["chosen"][0]["content"]))
        assert_that(pairs, equal_to([("p1a", "p1c", 1.0, "below_threshold", "all right")]))


def test_pair_margin_is_a_floor():
    cands = [candidate("m1", "p1", "all right"), candidate("m2", "p1", "half right")]
    judgments = [*judged("m1", 1.0), *judged("m2", 0.5)]
    plan = simple_plan(pairs=PairsConfig(min_margin=0.6))
    with TestPipeline() as p:
        assert_that(run_curate(p, cands, judgments, plan)["pairs"], equal_to([]))


def screen(row, plan=PLAN):
    return first_failure(row, [check for step in CHAIN if isinstance(step, RowFilter) and (check := step.build(plan))])


def test_screen_order_names_the_first_failure():
    verifier, length = judgment("x", "ifeval_verifier", 0.5, passed=False), judgment("x", "heuristic_length", 0.0, passed=False)
    row = {"judgments": [verifier, length], "text": "t", "instruction_ids": ["a"], "finish_reason": "stop",
           "score": 0.5, "prompt_tokens": 3}
    assert screen(row)[0] == "length_out_of_bounds"
    assert screen({**row, "judgments": [length]})[0] == "unjudged"
    assert screen({**row, "judgments": [verifier]})[0] == "below_threshold"


def test_funnel_steps_chain_and_add_up():
    counts = {"truncated": 5, "below_threshold": 10, "near_duplicate": 2, "over_prompt_cap": 3}
    steps = funnel(100, counts)
    assert steps[0]["in"] == 100 and steps[-1]["out"] == 80
    assert all(a["out"] == b["in"] for a, b in zip(steps, steps[1:]))
    assert {r for s in steps for r in s["rejected"]} == set(REASONS)


def control_plan(control, rows, seed=7):
    config = dataclasses.replace(PLAN.config, control=control, control_rows={"iter-001": rows})
    return dataclasses.replace(PLAN, config=config, control_rows=rows, seed=seed)


def curated_reasons(plan):
    """{candidate id: None if kept, else its rejection reason}, and the kept rows' keep reasons."""
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/out.json"

        def save(rows):
            with open(path, "w") as f:
                json.dump(rows, f)

        with TestPipeline() as p:
            out = run_curate(p, CANDIDATES, JUDGMENTS, plan)
            kept = out["kept"] | "KeptIds" >> beam.Map(lambda r: (r["candidate_id"], None, r["keep_reason"]))
            rejected = out["rejected"] | "RejectedIds" >> beam.Map(lambda r: (r["candidate_id"], r["reason"], ""))
            assert_that((kept, rejected) | beam.Flatten(), save)
        with open(path) as f:
            results = json.load(f)
    return {cid: reason for cid, reason, _ in results}, {why for _, reason, why in results if reason is None}


def test_no_filter_control_samples_from_every_usable_candidate():
    reasons, keep_reasons = curated_reasons(control_plan("no_filter", 4))
    assert len(reasons) == len(CANDIDATES)  # every candidate accounted for
    kept = {cid for cid, r in reasons.items() if r is None}
    assert len(kept) == 4 and keep_reasons == {"control no_filter: random sample of 4"}
    # unusable rows (no text, no judgment, judge error, not generated), contamination and exact copies still go
    for cid, reason in (("b3", "empty"), ("b4", "judge_error"), ("b5", "unjudged"), ("c2", "prompt_too_long"),
                        ("b7", "contaminated"), ("a2", "duplicate")):
        assert reasons[cid] == reason
    # the quality filters do not: truncated, repetitive, below-threshold and unverifiable rows are in the pool
    pool = {"a1", "a3", "a4", "a5", "a6", "b1", "b2", "b6", "c1"}
    assert kept <= pool and {cid for cid, r in reasons.items() if r == "not_sampled"} == pool - kept


def test_random_judge_control_keeps_heuristics_and_dedup_but_not_the_judges():
    reasons, _ = curated_reasons(control_plan("random_judge", 3))
    assert reasons["b2"] == "truncated" and reasons["b6"] == "repetitive" and reasons["a6"] == "near_duplicate"
    pool = {"a1", "a3", "a4", "a5", "b1", "c1"}  # b1 fails the verifier, c1 has nothing to verify: both eligible
    kept = {cid for cid, r in reasons.items() if r is None}
    assert len(kept) == 3 and kept <= pool
    assert {cid for cid, r in reasons.items() if r == "not_sampled"} == pool - kept


def test_control_sample_is_fixed_by_the_seed_and_changes_with_it():
    def kept(seed):
        reasons, _ = curated_reasons(control_plan("no_filter", 4, seed))
        return {cid for cid, r in reasons.items() if r is None}

    assert kept(7) == kept(7)
    assert len({frozenset(kept(s)) for s in range(6)}) > 1


def test_control_needs_its_row_counts(tmp_path):
    from pipelines import config as config_module
    from tests.stage_fixtures import write_params

    write_params(tmp_path, "unused", curate={"control": "no_filter", "control_rows": {"iter-001": 5}},
                 iterations={"iter-001": {"generator": "base"}, "iter-002": {"generator": "iter-001"}})
    with pytest.raises(config_module.ConfigError, match="control_rows needs the number of rows to keep for iter-002"):
        config_module.load(tmp_path / "params.yaml")


def test_validation_relaxes_only_what_a_control_does_not_filter(tmp_path):
    from pipelines import config as config_module
    from pipelines.stages.validate import min_kept_score
    from tests.stage_fixtures import write_params

    def load(control):
        write_params(tmp_path, "unused", curate={"control": control, "control_rows": {"iter-001": 5, "iter-002": 5}})
        return config_module.load(tmp_path / "params.yaml")

    assert min_kept_score(load("none")) == 1.0  # the verifier's threshold
    assert min_kept_score(load("random_judge")) == min_kept_score(load("no_filter")) == 0.0


def test_artifact_heuristics_reject_in_curation_only_when_switched_on():
    stray = candidate("s1", "p1", 'Hi there owls of the night.\n\n"And the bats fly over the barn at dusk')
    clean = candidate("s2", "p1", "Hi there owls of the night and the bats fly over the barn at dusk")
    prompts = {p["prompt_id"]: p for p in PROMPTS}
    for reject, expected in ((False, []), (True, [("s1", "stray_quote")])):
        checks = enabled_checks(JudgeConfig(heuristics=HeuristicsConfig(min_words=1, reject_artifacts=reject)))
        judgments = [j for c in (stray, clean) for j in rule_judgments(c, prompts.get(c["prompt_id"]), checks)]
        with TestPipeline() as p:
            out = run_curate(p, [stray, clean], judgments, simple_plan(max_per_prompt=2))
            reasons = out["rejected"] | beam.Map(lambda r: (r["candidate_id"], r["reason"]))
            assert_that(reasons, equal_to(expected))
