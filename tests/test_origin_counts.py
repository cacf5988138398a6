import pyarrow as pa

from pipelines.stages.curate import origin_counts


def test_each_origin_gets_its_own_funnel_and_kept_rows_per_type():
    kept = pa.table({"origin": ["sampled", "revised", "revised"], "generation_round": [1, 1, 2],
                     "instruction_ids": [["a"], ["b", "a"], ["b"]]})
    rejected = pa.table({"origin": ["sampled", "sampled", "revised", "revised"], "generation_round": [1, 2, 2, 1],
                         "reason": ["below_threshold", "truncated", "below_threshold", "duplicate"]})
    counts = origin_counts(kept, rejected)
    assert counts["kept_per_origin"] == {"sampled": 1, "revised": 2}
    funnels = counts["funnel_per_origin"]
    assert [funnels[o][0]["in"] for o in ("sampled", "revised")] == [3, 4]
    policy = next(step for step in funnels["sampled"] if step["step"] == "judge policy")
    assert policy["rejected"]["below_threshold"] == 1
    assert counts["kept_per_instruction_type_and_origin"] == {"sampled": {"a": 1}, "revised": {"a": 1, "b": 2}}
    by_round = counts["funnel_per_generation_round"]
    assert {r: (f[0]["in"], f[-1]["out"]) for r, f in by_round.items()} == {"1": (4, 2), "2": (3, 1)}
