"""The CTranslate2 backend against the transformers handler, its conversion cache and its seeding contract."""

import shutil

import pytest

from transforms.generation import ct2_generation
from transforms.generation.ct2_generation import CTranslate2Handler, converted_dir
from transforms.generation.hf_generation import CausalLMHandler, GenerationRequest, SamplingParams

TEXTS = ["Say hello.", "Write a long paragraph about the sea and its many moods.", "Count to three.",
         "Describe a quiet forest at dawn in detail.", "Say hello."]


def requests(seeds=None):
    seeds = seeds or range(len(TEXTS))
    return [GenerationRequest(key=f"r{i}", messages=(("user", t),), seed=s) for i, (t, s) in enumerate(zip(TEXTS, seeds))]


def run(handler, reqs):
    return [r.inference for r in handler.run_inference(reqs, handler.load_model())]


def test_greedy_float32_equals_the_transformers_handler(varied_model_dir):
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    ours = run(CausalLMHandler(str(varied_model_dir), greedy, micro_batch_size=4, dtype="float32"), requests())
    ct2 = run(CTranslate2Handler(str(varied_model_dir), greedy, micro_batch_size=4, quantization="float32"), requests())
    assert ct2 == ours  # text, prompt and completion tokens, finish reason
    assert {g.finish_reason for g in ct2} == {"length"}


def test_finish_reasons_and_token_counts(tiny_model_dir):
    sampling = SamplingParams(temperature=0, max_new_tokens=3)
    long_prompt = GenerationRequest(key="long", messages=(("user", "word " * 300),), seed=0)
    out = run(CTranslate2Handler(str(tiny_model_dir), sampling, max_prompt_tokens=100, quantization="float32"),
              requests()[:2] + [long_prompt])
    assert [g.finish_reason for g in out] == ["length", "length", "prompt_too_long"]
    assert [g.completion_tokens for g in out] == [3, 3, 0]
    assert out[2].prompt_tokens > 100 and out[2].text == ""


def test_sampling_depends_on_the_batch_not_its_order(varied_model_dir):
    sampling = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=16)
    handler = CTranslate2Handler(str(varied_model_dir), sampling, quantization="float32")
    model = handler.load_model()
    texts = lambda reqs: {r.example.key: r.inference.text for r in handler.run_inference(reqs, model)}  # noqa: E731
    first = texts(requests())
    assert texts(list(reversed(requests()))) == first
    assert texts(requests(seeds=[10, 11, 12, 13, 14])) != first


def test_conversion_is_cached_by_the_weights_hash(tmp_path, monkeypatch):
    from tests.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "models" / "a")
    first = converted_dir(model, "int8")
    assert first.parent == tmp_path / "models" / ".ctranslate2" and (first / "model.bin").is_file()

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr("ctranslate2.converters.TransformersConverter.convert", no_conversion)
    assert converted_dir(model, "int8") == first  # hit
    with pytest.raises(AssertionError, match="converted again"):
        converted_dir(model, "float32")  # another quantization is another copy
    monkeypatch.undo()

    shutil.rmtree(model)
    build_tiny_model(model, seed=1)  # same folder, other weights
    changed = converted_dir(model, "int8")
    assert changed != first and (changed / "model.bin").is_file() and (first / "model.bin").is_file()
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no scratch folder left


def test_batch_seed_depends_on_every_seed():
    assert ct2_generation.batch_seed([1, 2, 3]) == ct2_generation.batch_seed([1, 2, 3])
    assert ct2_generation.batch_seed([1, 2, 3]) != ct2_generation.batch_seed([1, 2, 4])


def test_the_generate_stage_builds_it_from_params(tmp_path):
    import yaml

    from pipelines.config import ConfigError, load
    from pipelines.generate import generation_handler

    def params(backend):
        path = tmp_path / f"{backend}.yaml"
        path.write_text(yaml.safe_dump({"seed": 1, "base_model": {"source": "m.gguf"},
                                        "iterations": {"iter-001": {"generator": "base"}},
                                        "generate": {"backend": backend}}))
        return path

    handler = generation_handler(load(params("ctranslate2")), "models/base", SamplingParams(temperature=0.8))
    assert isinstance(handler, CTranslate2Handler)
    with pytest.raises(ConfigError, match="generate.backend must be one of transformers, ctranslate2, vllm"):
        load(params("onnx"))
