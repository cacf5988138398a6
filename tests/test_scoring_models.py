"""Judge-model handlers on tiny random models: scores in range, unscorable inputs become errors,
and a batch's scores do not depend on which other requests share it."""

import pytest

from transforms.judges.llm_judge import RatingJudgeHandler, rubric_prefix_length
from transforms.judges.reward_model import RewardModelHandler, normalized_reward
from transforms.judges.scoring_models import ModelJudgeConfig, ScoreRequest


def build_tiny_reward_model(out):
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from tests.tiny_model import TOKENIZER_FIXTURE

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_FIXTURE)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForSequenceClassification(config).save_pretrained(out, safe_serialization=True)
    for item in TOKENIZER_FIXTURE.iterdir():
        shutil.copy(item, out / item.name)
    return out


@pytest.fixture(scope="module")
def tiny_reward_model_dir(tmp_path_factory):
    return build_tiny_reward_model(tmp_path_factory.mktemp("reward") / "model")


REQUESTS = [ScoreRequest("a", "Write about owls.", "Owls hoot at night."),
            ScoreRequest("b", "Write about bats.", "Bats fly."),
            ScoreRequest("c", "Write about frogs.", "   "),
            ScoreRequest("d", "Write about moss.", "moss " * 400)]


def config(model_dir, micro_batch_size=2, threshold=0.5):
    return ModelJudgeConfig(enabled=True, model=str(model_dir), threshold=threshold, max_input_tokens=256,
                            micro_batch_size=micro_batch_size, max_batch_size=8, dtype="float32")


def run(handler_class, model_dir, requests, **kwargs):
    handler = handler_class(config(model_dir, kwargs.get("micro_batch_size", 2)))
    model = handler.load_model()
    return {r.example.key: r.inference for r in handler.run_inference(requests, model)}


@pytest.mark.parametrize("handler_class, fixture", [(RatingJudgeHandler, "tiny_model_dir"),
                                                     (RewardModelHandler, "tiny_reward_model_dir")])
def test_scores_in_range_and_unscorable_inputs_are_named(request, handler_class, fixture):
    model_dir = request.getfixturevalue(fixture)
    out = run(handler_class, model_dir, REQUESTS)
    for key in ("a", "b"):
        assert not out[key].error and 0.0 <= out[key].score <= 1.0
        assert out[key].passed == (out[key].score >= 0.5)
    assert not out["c"].passed and not out["d"].passed
    assert out["c"].error.startswith("empty answer")
    assert out["d"].error.startswith("input too long") and out["d"].detail["input_tokens"] > 256
    alone = run(handler_class, model_dir, [REQUESTS[0]])
    assert alone["a"].score == pytest.approx(out["a"].score, abs=1e-4)  # padding does not change a score


def test_rating_probabilities_are_recorded(tiny_model_dir):
    out = run(RatingJudgeHandler, tiny_model_dir, REQUESTS[:1])
    assert sum(out["a"].detail["rating_probabilities"]) == pytest.approx(1.0, abs=1e-3)


def test_reward_normalization():
    assert normalized_reward([0.0])[0] == 0.5
    assert normalized_reward([10.0])[0] > 0.99
    assert normalized_reward([2.0, 2.0])[0] == 0.5
    assert normalized_reward([-5.0, 5.0])[0] > 0.99
    with pytest.raises(ValueError, match="1 or 2 output labels"):
        normalized_reward([1.0, 2.0, 3.0])


def test_shared_prefix_judging_gives_the_plain_forward_scores(varied_model_dir):
    requests = [ScoreRequest(f"{p}-{n}", f"Write about {p}.", f"{p.title()} answer number {n}, " + "words " * n)
                for p in ("owls", "bats", "moss") for n in range(3)]
    shared = run(RatingJudgeHandler, varied_model_dir, requests, micro_batch_size=1)  # one prefix per prompt
    plain = run(RatingJudgeHandler, varied_model_dir, requests, micro_batch_size=4)  # every token per candidate
    for key in shared:
        assert shared[key].score == pytest.approx(plain[key].score, abs=1e-4)
    assert len({round(s.score, 4) for s in shared.values()}) > 3  # the model tells the answers apart
    handler = RatingJudgeHandler(config(varied_model_dir, micro_batch_size=1))
    tokenizer = handler.load_model().tokenizer
    ids = handler.encode(tokenizer, requests[0])
    cut = rubric_prefix_length(tokenizer, requests[0], ids)
    assert tokenizer.decode(ids[:cut]).endswith("[Response]\n")
    assert tokenizer.decode(ids[cut:]).startswith("Owls answer number 0")
