import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.curation import Curate, Policy, normalize, screen_reason

PROMPTS = [
    {"prompt_id": "p1", "messages": [{"role": "user", "content": "one"}], "instruction_ids": ["punctuation:no_comma"], "kwargs": ["{}"]},
    {"prompt_id": "p2", "messages": [{"role": "user", "content": "two"}], "instruction_ids": ["punctuation:no_comma"], "kwargs": ["{}"]},
    {"prompt_id": "p3", "messages": [{"role": "user", "content": "three"}], "instruction_ids": [], "kwargs": []},
]


def candidate(cid, prompt_id, text, finish="stop"):
    return {"candidate_id": cid, "prompt_id": prompt_id, "text": text, "finish_reason": finish}


def judgment(cid, score, error=None):
    detail = {"error": error} if error else {}
    return {"candidate_id": cid, "judge": "ifeval_verifier", "score": score, "passed": score == 1.0,
            "detail": json.dumps(detail)}


CANDIDATES = [
    candidate("a1", "p1", "good answer"),
    candidate("a2", "p1", "Good   Answer"),          # duplicate of a1 after normalization
    candidate("a3", "p1", "another good one"),
    candidate("a4", "p1", "a third good one"),       # over the cap of 2 for p1
    candidate("b1", "p2", "too weak"),               # below threshold
    candidate("b2", "p2", "cut off mid", "length"),  # truncated
    candidate("b3", "p2", "   "),                    # empty
    candidate("b4", "p2", "checker broke"),          # judge error
    candidate("b5", "p2", "never judged"),           # no judgment
    candidate("c1", "p3", "no constraints to check"),  # unverifiable
    candidate("c2", "p3", "", "prompt_too_long"),      # never generated
]
JUDGMENTS = [judgment(c, 1.0) for c in ("a1", "a2", "a3", "a4", "b2", "b3", "c1", "c2")] + [
    judgment("b1", 0.0), judgment("b4", 0.0, error="LookupError: punkt"), judgment("orphan", 1.0)]
POLICY = Policy(min_score=1.0, drop_truncated=True, max_per_prompt=2)
EXPECTED = {"a1": None, "a3": None, "a2": "duplicate", "a4": "over_prompt_cap", "b1": "below_threshold",
            "b2": "truncated", "b3": "empty", "b4": "judge_error", "b5": "unjudged", "c1": "unverifiable",
            "c2": "prompt_too_long"}



def test_every_candidate_kept_or_rejected_once_with_reason():
    with TestPipeline() as p:
        out = (p | "C" >> beam.Create(CANDIDATES), p | "J" >> beam.Create(JUDGMENTS),
               p | "P" >> beam.Create(PROMPTS)) | Curate(POLICY)
        kept_ids = out["kept"] | "KeptIds" >> beam.Map(lambda r: r["candidate_id"])
        rejected = out["rejected"] | "Reasons" >> beam.Map(lambda r: (r["candidate_id"], r["reason"]))
        assert_that(kept_ids, equal_to([k for k, v in EXPECTED.items() if v is None]), label="kept")
        assert_that(rejected, equal_to([(k, v) for k, v in EXPECTED.items() if v]), label="rejected")

        def check_kept(rows):
            by_id = {r["candidate_id"]: r for r in rows}
            assert by_id["a1"]["dedup_cluster_size"] == 2 and by_id["a3"]["dedup_cluster_size"] == 1
            assert by_id["a1"]["keep_reason"].startswith("passed score>=1.0")
            assert by_id["a1"]["messages"] == PROMPTS[0]["messages"]
            assert [j["judge"] for j in by_id["a1"]["judgments"]] == ["ifeval_verifier"]

        assert_that(out["kept"], check_kept, label="kept rows")


def test_all_fail_keeps_nothing_and_counts_all():
    judgments = [judgment(c["candidate_id"], 0.0) for c in CANDIDATES]
    with TestPipeline() as p:
        out = (p | "C" >> beam.Create(CANDIDATES), p | "J" >> beam.Create(judgments),
               p | "P" >> beam.Create(PROMPTS)) | Curate(POLICY)
        assert_that(out["kept"], equal_to([]), label="kept")
        count = out["rejected"] | beam.combiners.Count.Globally()
        assert_that(count, equal_to([len(CANDIDATES)]), label="count")


def test_cap_of_one_keeps_best_score_then_smallest_id():
    cands = [candidate("z9", "p1", "x y"), candidate("z1", "p1", "x z"), candidate("z5", "p1", "x w")]
    judgments = [judgment("z9", 1.0), judgment("z1", 1.0), judgment("z5", 1.0)]
    with TestPipeline() as p:
        out = (p | "C" >> beam.Create(cands), p | "J" >> beam.Create(judgments),
               p | "P" >> beam.Create(PROMPTS)) | Curate(Policy(1.0, True, 1))
        assert_that(out["kept"] | beam.Map(lambda r: r["candidate_id"]), equal_to(["z1"]))


def test_threshold_below_one_keeps_partial_scores():
    row = {"judgments": [judgment("x", 0.5)], "text": "t", "instruction_ids": ["a", "b"],
           "finish_reason": "stop", "score": 0.5}
    assert screen_reason(row, Policy(0.5, True, 1)) is None
    assert screen_reason(row, Policy(0.6, True, 1)) == "below_threshold"
    assert screen_reason({**row, "finish_reason": "length"}, Policy(0.5, False, 1)) is None


def test_normalize():
    assert normalize("  Hello\n\tWORLD  ") == normalize("hello world") == "hello world"
    assert normalize("Ｆｕｌｌ") == "full"
