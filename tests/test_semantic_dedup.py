import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms.curation import semantic_dedup
from transforms.curation.semantic_dedup import SemanticDedup, SemanticDedupConfig, SentenceEmbeddingHandler, similar_pairs


def unit(*xs):
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_similar_pairs_by_cosine_across_blocks(monkeypatch):
    monkeypatch.setattr(semantic_dedup, "BLOCK", 2)  # force several blocks
    items = [("d", unit(1, 0.01)), ("a", unit(1, 0)), ("b", unit(0, 1)), ("c", unit(-1, 0)), ("e", unit(0.02, 1))]
    assert sorted(similar_pairs(items, 0.99)) == [("a", "d"), ("b", "e")]
    assert similar_pairs(items[:1], 0.5) == []


def test_embeddings_are_unit_vectors_and_padding_free(tiny_model_dir):
    handler = SentenceEmbeddingHandler(str(tiny_model_dir), batch_size=4, max_tokens=32)
    model = handler.load_model()
    texts = ["owls hoot at night", "bats", "owls hoot at night"]
    vectors = [r.inference for r in handler.run_inference(texts, model)]
    assert all(abs(np.linalg.norm(v) - 1) < 1e-4 for v in vectors)
    assert float(vectors[0] @ vectors[2]) == pytest.approx(1.0, abs=1e-4)
    alone = handler.run_inference(["owls hoot at night"], model)[0].inference
    assert float(alone @ vectors[0]) == pytest.approx(1.0, abs=1e-4)  # padding in a batch changes nothing


@pytest.mark.parametrize("scope, kept", [("within_prompt", ["a", "c", "d"]), ("global", ["a", "d"])])
def test_scope_decides_which_answers_are_compared(tiny_model_dir, scope, kept):
    rows = [{"candidate_id": cid, "prompt_id": pid, "text": text, "score": 1.0, "dedup_cluster_size": 1}
            for cid, pid, text in [("a", "p1", "owls hoot at night"), ("b", "p1", "owls hoot at night"),
                                   ("c", "p2", "owls hoot at night"), ("d", "p2", "bats fly in caves at dusk")]]
    params = SemanticDedupConfig(enabled=True, model=str(tiny_model_dir), threshold=0.9999, scope=scope, batch_size=4)
    with TestPipeline() as p:
        out = p | beam.Create(rows) | SemanticDedup(params)
        assert_that(out.kept | "K" >> beam.Map(lambda r: r["candidate_id"]), equal_to(kept), label="kept")
        assert_that(out.rejected | "R" >> beam.Map(lambda r: r["reason"]),
                    equal_to(["semantic_duplicate"] * (4 - len(kept))), label="rejected")
