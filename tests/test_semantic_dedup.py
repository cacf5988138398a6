import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.fake_remote_fs import PREFIX
from tests.tiny_model import bag_of_tokens, build_bag_of_tokens_encoder
from transforms.curation import semantic_dedup
from transforms.curation.notes import TRUNCATED_FOR_EMBEDDING
from transforms.curation.semantic_dedup import SemanticDedup, SemanticDedupConfig, SentenceEmbeddingHandler, similar_pairs
from transforms.io.model_io import upload
from transforms.text_normalization import text_hash


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
    vectors = [r.inference.vector for r in handler.run_inference(texts, model)]
    assert all(abs(np.linalg.norm(v) - 1) < 1e-4 for v in vectors)
    assert float(vectors[0] @ vectors[2]) == pytest.approx(1.0, abs=1e-4)
    alone = handler.run_inference(["owls hoot at night"], model)[0].inference.vector
    assert float(alone @ vectors[0]) == pytest.approx(1.0, abs=1e-4)  # padding in a batch changes nothing


ROWS = [{"candidate_id": cid, "prompt_id": pid, "text": text, "score": 1.0, "dedup_cluster_size": 1}
        for cid, pid, text in [("a", "p1", "owls hoot at night"), ("b", "p1", "owls hoot at night"),
                               ("c", "p2", "owls hoot at night"), ("d", "p2", "bats fly in caves at dusk")]]


# Near duplicates that exact dedup keeps apart (their normalized texts differ), and a distinct answer.
BASE = "Owls hunt quietly at night because soft feathers on their wings muffle every beat as they glide low over open fields."
NEAR = {"a": ("p1", BASE),
        "b": ("p1", BASE.replace("night", "night,").replace("fields.", "fields!")),  # punctuation
        "c": ("p2", BASE.replace("quietly", "silently")),  # a word
        "d": ("p2", "Owls also nest in old barns and hollow trees where a pair raises two or three chicks each spring.")}


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """An encoder whose similarities are known exactly: the cosine of the texts' token counts."""
    texts = [text for _, text in NEAR.values()]
    return build_bag_of_tokens_encoder(tmp_path_factory.mktemp("encoder") / "model", texts)


def test_the_encoders_cosines_are_those_of_token_counts(encoder_dir):
    assert len({text_hash(text) for _, text in NEAR.values()}) == len(NEAR)  # no exact duplicates
    handler = SentenceEmbeddingHandler(str(encoder_dir), batch_size=4, max_tokens=64)
    model = handler.load_model()
    vectors = {cid: r.inference.vector for cid, r in zip(NEAR, handler.run_inference([t for _, t in NEAR.values()], model))}
    counts = {cid: bag_of_tokens(model.tokenizer, text) for cid, (_, text) in NEAR.items()}

    def by_hand(x, y):
        dot = sum(n * counts[y][key] for key, n in counts[x].items())
        return dot / (sum(n * n for n in counts[x].values()) * sum(n * n for n in counts[y].values())) ** 0.5

    for x, y in (("a", "b"), ("a", "c"), ("b", "c"), ("a", "d"), ("b", "d"), ("c", "d")):
        assert float(vectors[x] @ vectors[y]) == pytest.approx(by_hand(x, y), abs=1e-5), (x, y)
    threshold = SemanticDedupConfig().threshold
    assert by_hand("a", "b") >= threshold and by_hand("a", "c") >= threshold  # near duplicates of a
    assert max(by_hand(x, "d") for x in "abc") < 0.5  # d is another answer


@pytest.mark.parametrize("scope, kept", [("within_prompt", ["a", "c", "d"]), ("global", ["a", "d"])])
def test_near_duplicates_are_found_at_the_default_threshold_within_the_scope(encoder_dir, scope, kept):
    rows = [{"candidate_id": cid, "prompt_id": pid, "text": text, "score": 1.0, "dedup_cluster_size": 1}
            for cid, (pid, text) in NEAR.items()]
    params = SemanticDedupConfig(enabled=True, model=str(encoder_dir), scope=scope, batch_size=4)  # threshold 0.95
    with TestPipeline() as p:
        out = p | beam.Create(rows) | SemanticDedup(params)
        assert_that(out["kept"] | "K" >> beam.Map(lambda r: r["candidate_id"]), equal_to(kept), label="kept")
        assert_that(out["rejected"] | "R" >> beam.Map(lambda r: (r["candidate_id"], r["reason"])),
                    equal_to([(cid, "semantic_duplicate") for cid in "abcd" if cid not in kept]), label="rejected")


def test_answers_longer_than_the_token_limit_are_flagged(tiny_model_dir):
    handler = SentenceEmbeddingHandler(str(tiny_model_dir), batch_size=4, max_tokens=5)
    model = handler.load_model()
    texts = ["owls", "owls hoot at night over the old barn", "bats fly"]
    lengths = [len(model.tokenizer(t)["input_ids"]) for t in texts]
    results = handler.run_inference(texts, model)
    assert [r.inference.truncated for r in results] == [n > 5 for n in lengths] == [False, True, False]


def test_truncated_answers_are_noted_one_each(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(semantic_dedup, "MAX_TOKENS", 4)  # every text but "owls" has more tokens
    params = SemanticDedupConfig(enabled=True, model=str(tiny_model_dir), threshold=0.9999, batch_size=4)
    rows = [*ROWS, {**ROWS[0], "candidate_id": "e", "text": "owls"}]
    with TestPipeline() as p:
        out = p | beam.Create(rows) | SemanticDedup(params)
        assert_that(out["notes"], equal_to([(TRUNCATED_FOR_EMBEDDING, cid) for cid in "abcd"]))


def test_the_model_may_live_under_a_remote_storage_root(tiny_model_dir, tmp_path):
    remote = f"{PREFIX}{tmp_path}/bucket/models/embedder"
    upload(tiny_model_dir, remote)
    params = SemanticDedupConfig(enabled=True, model=remote, threshold=0.9999, scope="global", batch_size=4)
    with TestPipeline() as p:
        out = p | beam.Create(ROWS) | SemanticDedup(params)
        assert_that(out["kept"] | beam.Map(lambda r: r["candidate_id"]), equal_to(["a", "d"]))


def test_the_curate_stage_checks_a_remote_model_before_it_runs(tiny_model_dir, tmp_path):
    from pipelines import config as config_module
    from pipelines.stages import curate
    from tests.stage_fixtures import chdir, write_params

    remote = f"{PREFIX}{tmp_path}/bucket/models/embedder"
    sem = {"enabled": True, "model": remote}
    write_params(tmp_path, str(tiny_model_dir), curate={"semantic_dedup": sem, "decontamination": {"enabled": False}})
    config = config_module.load(tmp_path / "params.yaml")
    with chdir(tmp_path):
        with pytest.raises(FileNotFoundError, match=f"curate.semantic_dedup.model: model folder not found: {remote}"):
            curate.plan_of(config, "iter-001")
        upload(tiny_model_dir, remote)
        assert curate.plan_of(config, "iter-001").config.semantic_dedup.model == remote


def test_global_scope_is_refused_above_its_size_before_the_stage_touches_anything(tmp_path, monkeypatch):
    from pipelines import config as config_module
    from pipelines.stages import curate
    from schemas.records import CANDIDATE
    from tests.records import candidate
    from tests.stage_fixtures import chdir, prompt, write_params, write_shards

    write_params(tmp_path, "unused", curate={"semantic_dedup": {"enabled": True, "scope": "global"}})
    config = config_module.load(tmp_path / "params.yaml")
    p = prompt("p1", "Say hi.", "train")
    write_shards(tmp_path, "iter-001", [candidate(f"c{i}", p, "hi") for i in range(3)], folder="candidates",
                 schema=CANDIDATE)
    kept = tmp_path / "data/shards/iter-001"
    kept.mkdir(parents=True)
    (kept / "manifest.json").write_text("earlier run")
    monkeypatch.setattr(semantic_dedup, "MAX_GLOBAL_ANSWERS", 2)
    with chdir(tmp_path), pytest.raises(ValueError, match="curate.semantic_dedup.scope: global .* 3 candidates"):
        curate.main(config, "iter-001", [])
    assert (kept / "manifest.json").read_text() == "earlier run"
    semantic_dedup.check_scope(SemanticDedupConfig(enabled=True, scope="within_prompt"), 10**9)
