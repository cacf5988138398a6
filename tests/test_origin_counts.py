"""The manifest's counts come from the pipeline's tally (transforms/curation/tally.py), the same whether it is
summed by Beam's combiner or over lists."""

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from pipelines.stages.curate import origin_counts
from transforms.curation.tally import CANDIDATES, KEPT, REJECTED_ROWS, Tally, from_json, tally, to_json

KEPT_ROWS = [{"origin": "sampled", "generation_round": 1, "instruction_ids": ["a"]},
             {"origin": "revised", "generation_round": 1, "instruction_ids": ["b", "a"]},
             {"origin": "revised", "generation_round": 2, "instruction_ids": ["b"]}]
REJECTED = [{"origin": "sampled", "generation_round": 1, "reason": "below_threshold"},
            {"origin": "sampled", "generation_round": 2, "reason": "truncated"},
            {"origin": "revised", "generation_round": 2, "reason": "below_threshold"},
            {"origin": "revised", "generation_round": 1, "reason": "duplicate"}]


def test_each_origin_gets_its_own_funnel_and_kept_rows_per_type():
    counts = origin_counts(from_json(to_json(tally({KEPT: KEPT_ROWS, REJECTED_ROWS: REJECTED}))))
    assert counts["kept_per_origin"] == {"sampled": 1, "revised": 2}
    funnels = counts["funnel_per_origin"]
    assert [funnels[o][0]["in"] for o in ("sampled", "revised")] == [3, 4]
    policy = next(step for step in funnels["sampled"] if step["step"] == "judge policy")
    assert policy["rejected"]["below_threshold"] == 1
    assert counts["kept_per_instruction_type_and_origin"] == {"sampled": {"a": 1}, "revised": {"a": 1, "b": 2}}
    by_round = counts["funnel_per_generation_round"]
    assert {r: (f[0]["in"], f[-1]["out"]) for r, f in by_round.items()} == {"1": (4, 2), "2": (3, 1)}


def test_the_combiner_sums_what_the_lists_sum():
    candidates = [{"candidate_id": str(i)} for i in range(7)]
    expected = tally({CANDIDATES: candidates, KEPT: KEPT_ROWS, REJECTED_ROWS: REJECTED})
    with beam.Pipeline() as p:
        counts = {kind: p | f"Create{kind}" >> beam.Create(rows)
                  for kind, rows in ((CANDIDATES, candidates), (KEPT, KEPT_ROWS), (REJECTED_ROWS, REJECTED))} | Tally()
        assert_that(counts, equal_to([expected]))
    assert expected[(CANDIDATES,)] == 7 and expected[(REJECTED_ROWS, "sampled", 1, "below_threshold")] == 1
