"""Selection across prompts without gathering the rows (the top fraction, the cap per instruction type) keeps exactly
the rows that ranking them all at once keeps (selection.balance_and_top), however the scores tie and however coarse
the quantiles."""

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.curation.selection import CapByType, SelectionPolicy, balance_and_top
from transforms.curation.top_fraction import Band, TopFraction, kth_key, narrowed


def outcome(row) -> tuple:
    return row["candidate_id"], row.get("reason", "kept"), row.get("reason_detail", "")


ROWS = st.lists(st.tuples(st.sampled_from([0.0, 0.5, 0.75, 1.0]), st.integers(0, 10**6)), max_size=60,
                unique_by=lambda t: t[1])


@settings(max_examples=15, deadline=None)
@given(ROWS, st.sampled_from([0.01, 0.1, 0.5, 0.9, 0.99]), st.integers(2, 6))
def test_top_fraction_equals_ranking_every_row_at_once(scored, fraction, quantiles):
    rows = [{"candidate_id": f"c{i:07d}", "score": s, "instruction_ids": ["x"], "prompt_id": "p"} for s, i in scored]
    expected = [outcome(getattr(r, "value", r))  # a rejection comes as a TaggedOutput
                for r in balance_and_top(rows, SelectionPolicy(top_fraction=fraction))]
    with beam.Pipeline() as p:
        kept, rejected = p | beam.Create(rows) | TopFraction(fraction, quantiles)
        assert_that((kept, rejected) | beam.Flatten() | beam.Map(outcome), equal_to(expected))


def test_the_bands_narrow_to_the_kth_key():
    keys = [(-1.0, f"c{i}") for i in range(10)] + [(0.0, f"d{i}") for i in range(10)]
    cuts = [keys[4], keys[12]]
    counts = {0: 4, 1: 8, 2: 8}
    band = narrowed(Band(None, None, 0), cuts, counts, k=7)
    assert band == Band(keys[4], keys[12], 4)
    assert kth_key([k for k in keys if band.lo <= k < band.hi], band, 7) == keys[6]
    assert narrowed(Band(None, None, 0), cuts, {}, k=0) == Band(None, None, 0)


def test_the_selection_step_uses_it_when_no_type_cap_is_set():
    from transforms.curation.selection import Select

    rows = [{"candidate_id": f"c{i}", "score": float(i % 3), "instruction_ids": ["x"], "prompt_id": f"p{i}"}
            for i in range(30)]
    policy = SelectionPolicy(max_per_prompt=1, top_fraction=0.3)
    best = [r["candidate_id"] for r in sorted(rows, key=lambda r: (-r["score"], r["candidate_id"]))[:9]]
    with beam.Pipeline() as p:
        kept, _ = p | beam.Create(rows) | Select(policy)
        assert_that(kept | beam.Map(lambda r: r["candidate_id"]), equal_to(best))
    names = {t.unique_name for t in p.to_runner_api().components.transforms.values()}
    assert any("TopFraction" in n for n in names) and not any("GatherSelected" in n for n in names)


TYPED = st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0]), st.integers(0, 10**6),
                           st.lists(st.sampled_from("abcd"), max_size=3, unique=True)), max_size=40,
                 unique_by=lambda t: t[1])


@settings(max_examples=15, deadline=None)
@given(TYPED, st.integers(1, 4), st.sampled_from([0.3, 1.0]))
def test_the_type_cap_without_gathering_equals_ranking_every_row_at_once(typed, cap, fraction):
    """Rows carrying several types, and rows carrying none, under a cap small enough to bind."""
    rows = [{"candidate_id": f"c{i:07d}", "score": s, "instruction_ids": types, "prompt_id": "p"} for s, i, types in typed]
    policy = SelectionPolicy(max_per_instruction_type=cap, top_fraction=fraction)
    expected = [outcome(getattr(r, "value", r)) for r in balance_and_top(rows, policy)]
    with beam.Pipeline() as p:
        kept, rejected = p | beam.Create(rows) | CapByType(policy)
        assert_that((kept, rejected) | beam.Flatten() | beam.Map(outcome), equal_to(expected))
