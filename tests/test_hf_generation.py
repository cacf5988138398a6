import apache_beam as beam
import torch
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from transforms.generation.hf_generation import CausalLMHandler, GenerationRequest, SamplingParams, generate_batch

PROMPTS = ["Say hello.", "Write a long paragraph about the sea and its many moods.", "Count to three.",
           "Name a colour.", "Describe a quiet forest at dawn in detail."]


def requests(seed_offset=0):
    return [GenerationRequest(key=f"k{i}", messages=(("user", p),), seed=i + seed_offset) for i, p in enumerate(PROMPTS)]


def test_greedy_matches_plain_generate(varied_model):
    model, tokenizer = varied_model
    out = generate_batch(model, tokenizer, requests(), SamplingParams(temperature=0.0, max_new_tokens=12), 4, 512)
    for req, gen in zip(requests(), out, strict=True):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": req.messages[0][1]}],
                                            add_generation_prompt=True, return_dict=False, return_tensors="pt")
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        with torch.inference_mode():
            plain = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        tokens = plain[0, ids.shape[1]:].tolist()
        if tokenizer.eos_token_id in tokens:
            tokens = tokens[: tokens.index(tokenizer.eos_token_id)]
        assert gen.text == tokenizer.decode(tokens, skip_special_tokens=True)
        assert gen.completion_tokens == len(tokens)
        assert gen.prompt_tokens == ids.shape[1]


def test_sampling_depends_on_seed_not_batching(tiny_model):
    model, tokenizer = tiny_model
    sampling = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=10)
    together = generate_batch(model, tokenizer, requests(), sampling, 8, 512)
    one_by_one = generate_batch(model, tokenizer, requests(), sampling, 1, 512)
    assert [g.text for g in together] == [g.text for g in one_by_one]
    reseeded = generate_batch(model, tokenizer, requests(seed_offset=100), sampling, 8, 512)
    assert [g.text for g in reseeded] != [g.text for g in together]
    assert all(g.finish_reason in ("stop", "length") for g in together)
    assert all(g.completion_tokens <= 10 for g in together)
    assert any(g.finish_reason == "length" and g.completion_tokens == 10 for g in together)


def test_over_long_prompt_is_skipped_and_marked(tiny_model):
    model, tokenizer = tiny_model
    limit = 40  # the chat template's system prompt alone is about 30 tokens
    out = generate_batch(model, tokenizer, requests(), SamplingParams(0.0, max_new_tokens=2), 4, limit)
    long_ones = [g for g in out if g.prompt_tokens > limit]
    assert long_ones and all(g.finish_reason == "prompt_too_long" and g.text == "" for g in long_ones)
    assert all(g.finish_reason != "prompt_too_long" for g in out if g.prompt_tokens <= limit)


def test_handler_in_run_inference(tiny_model_dir):
    handler = CausalLMHandler(str(tiny_model_dir), SamplingParams(0.0, max_new_tokens=4), micro_batch_size=2,
                              max_batch_size=3)

    def check(results):
        assert sorted(meta for meta, _ in results) == [f"k{i}" for i in range(len(PROMPTS))]
        for meta, result in results:
            assert result.example.key == meta
            assert result.inference.completion_tokens <= 4

    with TestPipeline() as p:
        out = (p | beam.Create([(r.key, r) for r in requests()]) | RunInference(KeyedModelHandler(handler)))
        assert_that(out, check)
