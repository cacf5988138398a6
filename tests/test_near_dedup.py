import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from benchmarks.planted_duplicates import pair_precision_recall, planted_corpus
from transforms.clusters import connected_components
from transforms.near_dedup import MinHashParams, NearDedup, NearDuplicateEdges, bucket_pairs, shingles


@pytest.mark.parametrize("seed", range(3))
def test_planted_clusters_are_found_with_high_precision_and_recall(tmp_path, seed):
    docs = planted_corpus(seed=seed)
    out = tmp_path / "edges.json"
    with TestPipeline() as p:
        rows = p | beam.Create([{"candidate_id": d.doc_id, "text": d.text} for d in docs])
        _ = (rows | NearDuplicateEdges(MinHashParams()) | beam.combiners.ToList()
             | beam.Map(lambda edges: out.write_text(json.dumps(edges))))
    components = connected_components(json.loads(out.read_text()))
    predicted = {d.doc_id: components.get(d.doc_id, d.doc_id) for d in docs}
    precision, recall = pair_precision_recall(predicted, {d.doc_id: d.cluster for d in docs})
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)


def test_benchmark_scorer_counts_pairs():
    truth = {"a": "1", "b": "1", "c": "1", "d": "2"}
    assert pair_precision_recall(truth, truth) == (1.0, 1.0)
    assert pair_precision_recall({"a": "x", "b": "x", "c": "c", "d": "x"}, truth) == (pytest.approx(1 / 3), pytest.approx(1 / 3))


def test_connected_components_are_transitive_and_rooted_at_the_smallest_id():
    assert connected_components([("c", "d"), ("b", "c"), ("x", "y")]) == {"b": "b", "c": "b", "d": "b", "x": "x", "y": "x"}


def test_bucket_pairs_verify_similarity():
    import numpy as np

    same, other = np.arange(8), np.arange(8) + 100
    assert list(bucket_pairs([("b", same), ("a", same), ("c", other)], 0.7)) == [("a", "b")]


def test_short_texts_are_one_shingle():
    assert shingles("Hi there", 5) == {b"hi there"}


def test_one_row_per_cluster_is_kept_with_its_cluster():
    base = "the quick brown fox jumps over the lazy dog near the river bank today"
    rows = [{"candidate_id": "x2", "text": base, "score": 1.0, "dedup_cluster_size": 1},
            {"candidate_id": "x1", "text": base + " again", "score": 1.0, "dedup_cluster_size": 2},
            {"candidate_id": "x3", "text": "a completely different answer about owls", "score": 1.0, "dedup_cluster_size": 1}]
    with TestPipeline() as p:
        out = p | beam.Create(rows) | NearDedup(MinHashParams(ngram=3, threshold=0.6))
        kept = out.kept | "K" >> beam.Map(lambda r: (r["candidate_id"], r["dedup_cluster"], r["dedup_cluster_size"]))
        assert_that(kept, equal_to([("x1", "x1", 3), ("x3", "x3", 1)]), label="kept")
        assert_that(out.rejected | "R" >> beam.Map(lambda r: (r["candidate_id"], r["reason"])),
                    equal_to([("x2", "near_duplicate")]), label="rejected")


def test_a_huge_bucket_is_compared_as_a_star_not_all_pairs():
    import numpy as np

    from transforms.near_dedup import MAX_PAIRWISE_BUCKET

    members = [(f"id{i:03d}", np.zeros(8)) for i in range(MAX_PAIRWISE_BUCKET + 6)]
    pairs = list(bucket_pairs(members, 0.7))
    assert len(pairs) == len(members) - 1 and all(a == "id000" for a, _ in pairs)
    assert set(connected_components(pairs).values()) == {"id000"}
