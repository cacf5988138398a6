"""Devices and architectures: the `device` settings are parsed, validated and resolved with their key
named; architectures the custom decode loop is not verified for generate through transformers'
`generate` under the same contract (greedy equals plain generate; a sampled text depends on its seed,
not its batch); llama keeps the custom loop. The CUDA tests run only where a GPU is."""

import logging
import shutil

import pytest
import torch

from pipelines.cli import main
from pipelines.config import load
from tests.stage_fixtures import chdir, prompt, write_params, write_prompt_sets
from tests.tiny_model import TOKENIZER_FIXTURE
from transforms.curation.semantic_dedup import SemanticDedup, SemanticDedupConfig, SentenceEmbeddingHandler
from transforms.generation import hf_generation
from transforms.generation.decoding import ATTENTION, runs_custom_loop
from transforms.generation.fallback_generation import fallback_decode
from transforms.generation.hf_generation import (
    CausalLMHandler,
    GenerationRequest,
    RowSampler,
    SamplingParams,
    generate_batch,
)
from transforms.io import devices
from transforms.io.model_io import LoadPolicy, load_causal_lm
from transforms.judges.llm_judge import RatingJudgeHandler
from transforms.judges.scoring_models import ModelJudgeConfig, ScoreRequest
from transforms.settings import ConfigError

PROMPTS = ["Say hello.", "Write a long paragraph about the sea and its many moods.", "Count to three.",
           "Name a colour.", "Describe a quiet forest at dawn in detail.", "Say hello."]
SIZE = dict(num_hidden_layers=2, num_attention_heads=4, initializer_range=0.2)


def requests(seed_offset=0, order=None):
    order = range(len(PROMPTS)) if order is None else order
    return [GenerationRequest(key=f"k{i}", messages=(("user", PROMPTS[i]),), seed=i + seed_offset) for i in order]


def build_model(architecture: str, out):
    """A tiny random model of another architecture than llama, with the fixture tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_FIXTURE)
    ids = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    if architecture == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=1024, initializer_range=0.5,
                                           **ids))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(hidden_size=32, intermediate_size=64, num_key_value_heads=2,
                                             **SIZE, **ids))
    model.save_pretrained(out, safe_serialization=True)
    for item in TOKENIZER_FIXTURE.iterdir():
        shutil.copy(item, out / item.name)
    return out


@pytest.fixture(scope="module", params=["gpt2", "qwen2"])
def other_model_dir(request, tmp_path_factory):
    return build_model(request.param, tmp_path_factory.mktemp(request.param) / "model")


@pytest.fixture(scope="module")
def other_model(other_model_dir):
    return load_causal_lm(other_model_dir)


def chat_ids(tokenizer, text):
    ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                        tokenize=True, return_dict=False)
    return list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids)


def plain_greedy(model, ids, max_new_tokens, eos):
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                             pad_token_id=eos)
    return out[0, len(ids):].tolist()


@pytest.fixture
def which_path(monkeypatch):
    """Counts the calls to the custom loop and to the fallback during generate_batch."""
    calls = {"custom": 0, "fallback": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(hf_generation, "decode", counted("custom", hf_generation.decode))
    monkeypatch.setattr(hf_generation, "fallback_decode", counted("fallback", hf_generation.fallback_decode))
    return calls


# --- architectures ---------------------------------------------------------------------------------------


def test_fallback_greedy_equals_plain_generate(other_model, which_path):
    model, tokenizer = other_model
    assert not runs_custom_loop(model)
    out = generate_batch(model, tokenizer, requests(), SamplingParams(0.0, max_new_tokens=10), 4, 512)
    for text, gen in zip(PROMPTS, out, strict=True):
        tokens = plain_greedy(model, chat_ids(tokenizer, text), 10, tokenizer.eos_token_id)
        if tokenizer.eos_token_id in tokens:
            tokens = tokens[: tokens.index(tokenizer.eos_token_id)]
        assert gen.text == tokenizer.decode(tokens, skip_special_tokens=True)
        assert gen.completion_tokens == len(tokens) and gen.finish_reason == "length"
    assert len({g.text for g in out}) > 2  # the rows' texts differ: padding was exercised, not dodged
    assert which_path == {"custom": 0, "fallback": 2}
    assert model.config._attn_implementation != ATTENTION  # the model keeps its own attention


def test_fallback_stops_each_row_at_its_end_of_sequence(other_model):
    model, tokenizer = other_model
    prompts = [chat_ids(tokenizer, t) for t in PROMPTS]
    first = plain_greedy(model, prompts[1], 12, tokenizer.eos_token_id)
    eos = next(t for t in first[1:] if t != first[0])  # a token the model emits mid-way, as end of sequence
    expected = [plain_greedy(model, p, 12, eos) for p in prompts]
    assert len({len(e) for e in expected}) > 1, "rows should end at different steps"
    got = fallback_decode(model, prompts, range(len(prompts)), lambda seeds: RowSampler(SamplingParams(0.0), seeds),
                          True, 12, {eos}, tokenizer.pad_token_id)
    assert got == expected  # each row ends with its end-of-sequence token; the batch's padding after it is dropped


def test_fallback_sampling_depends_on_seed_not_batch(other_model):
    model, tokenizer = other_model
    sampling = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=8)
    out = generate_batch(model, tokenizer, requests(), sampling, 8, 512)
    texts = [g.text for g in out]
    again = [g.text for g in generate_batch(model, tokenizer, requests(), sampling, 8, 512)]
    one_by_one = [g.text for g in generate_batch(model, tokenizer, requests(), sampling, 1, 512)]
    reordered = generate_batch(model, tokenizer, requests(order=[4, 0, 2]), sampling, 2, 512)
    assert texts == again == one_by_one
    assert [g.text for g in reordered] == [texts[4], texts[0], texts[2]]
    assert all(g.completion_tokens <= 8 and g.finish_reason in ("stop", "length") for g in out)
    assert texts[0] != texts[5]  # the same prompt, another seed
    reseeded = [g.text for g in generate_batch(model, tokenizer, requests(seed_offset=100), sampling, 8, 512)]
    assert reseeded != texts


def test_fallback_ignores_the_model_folders_generation_config(other_model_dir):
    model, tokenizer = load_causal_lm(other_model_dir)
    greedy = SamplingParams(0.0, max_new_tokens=10)
    before = [g.text for g in generate_batch(model, tokenizer, requests(), greedy, 4, 512)]
    ids = chat_ids(tokenizer, PROMPTS[1])
    plain = plain_greedy(model, ids, 10, tokenizer.eos_token_id)
    model.generation_config.suppress_tokens = [plain[0]]
    model.generation_config.repetition_penalty = 50.0
    model.generation_config.min_new_tokens = 3
    with torch.inference_mode():
        honoured = model.generate(torch.tensor([ids]), max_new_tokens=10, pad_token_id=0)[0, len(ids):].tolist()
    assert honoured[0] != plain[0]  # plain `generate` follows the folder's settings
    assert [g.text for g in generate_batch(model, tokenizer, requests(), greedy, 4, 512)] == before


def test_handler_logs_the_fallback_naming_the_architecture(other_model_dir, caplog):
    handler = CausalLMHandler(str(other_model_dir), SamplingParams(0.0, max_new_tokens=2), device="cpu")
    with caplog.at_level(logging.INFO, logger="selfsift.generate"):
        loaded = handler.load_model()
    architecture = loaded.model.config.model_type
    lines = [r.getMessage() for r in caplog.records if "model.generate" in r.getMessage()]
    assert len(lines) == 1 and f"{architecture} is not an architecture the custom decode loop is verified for" in lines[0]


def test_llama_uses_the_custom_loop(tiny_model_dir, which_path, caplog):
    handler = CausalLMHandler(str(tiny_model_dir), SamplingParams(0.8, max_new_tokens=3), micro_batch_size=4,
                              device="cpu")
    with caplog.at_level(logging.INFO, logger="selfsift.generate"):
        loaded = handler.load_model()
    assert "(llama) on cpu, custom decode loop" in caplog.text and "model.generate" not in caplog.text
    results = handler.run_inference(requests(), loaded)
    assert len(results) == len(PROMPTS)
    assert which_path == {"custom": 2, "fallback": 0}
    assert loaded.model.config._attn_implementation == ATTENTION


# --- device settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_forms_accepted(value):
    devices.require_device(value, "generate")


@pytest.mark.parametrize("value", ["gpu", "CUDA", "cuda:", "cuda:a", "cpu:0", "", "mps", " cpu"])
def test_device_forms_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"generate\.device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        devices.require_device(value, "generate")


@pytest.mark.parametrize("section, values, key", [
    ("generate", {"device": "gpu"}, "generate.device"),
    ("evaluate", {"device": "cuda:x"}, "evaluate.device"),
    ("judge", {"llm_judge": {"device": "tpu"}}, "judge.llm_judge.device"),
    ("judge", {"reward_model": {"device": "CUDA"}}, "judge.reward_model.device"),
    ("curate", {"semantic_dedup": {"device": "cuda:"}}, "curate.semantic_dedup.device"),
])
def test_a_bad_device_in_params_is_named_when_loaded(tmp_path, section, values, key):
    path = write_params(tmp_path, "m.gguf", **{section: values})
    with pytest.raises(ConfigError, match=f"{key} must be"):
        load(path)


def test_params_default_to_auto():
    config = load("params.yaml")
    assert {config.generate.device, config.evaluate.device, config.judge.llm_judge.device,
            config.judge.reward_model.device, config.curate.semantic_dedup.device} == {"auto"}


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_resolve_without_cuda(no_cuda):
    assert devices.resolve("auto", "generate") == "cpu"
    assert devices.resolve("cpu", "generate") == "cpu"
    for value in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match=rf"generate\.device is '{value}', but this machine has no CUDA device"):
            devices.resolve(value, "generate")


def test_resolve_with_cuda(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert devices.resolve("auto", "evaluate") == "cuda"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(devices, "GPU_SLOTS", tmp_path / "slots")
    monkeypatch.setattr(devices, "_claim", {})
    assert devices.resolve("auto", "evaluate") == "cuda:0"  # the first process on a worker with two GPUs
    assert devices.resolve("cuda:1", "evaluate") == "cuda:1"
    assert devices.resolve("cpu", "evaluate") == "cpu"
    with pytest.raises(ConfigError, match=r"evaluate\.device is 'cuda:2', but this machine has 2 CUDA device"):
        devices.resolve("cuda:2", "evaluate")


def test_cuda_without_cuda_fails_where_each_model_stage_starts(no_cuda, tiny_model_dir):
    judge = ModelJudgeConfig(enabled=True, model=str(tiny_model_dir), device="cuda")
    with pytest.raises(ConfigError, match=r"judge\.llm_judge\.device is 'cuda'"):
        RatingJudgeHandler.build(judge, load_policy=LoadPolicy(), where="judge.llm_judge")
    with pytest.raises(ConfigError, match=r"curate\.semantic_dedup\.device is 'cuda:1'"):
        SemanticDedup(SemanticDedupConfig(enabled=True, model=str(tiny_model_dir), device="cuda:1"))
    # and, should a worker lack the GPU its launcher had, where the model loads
    with pytest.raises(ConfigError, match=r"evaluate\.device is 'cuda'"):
        CausalLMHandler(str(tiny_model_dir), SamplingParams(0.0), device="cuda", where="evaluate").load_model()


@pytest.mark.parametrize("stage, iteration, earlier, key", [
    ("generate", "1", "data/candidates/iter-001", "generate"), ("evaluate", "0", "data/evals/iter-000", "evaluate"),
    ("curate", "1", "data/shards/iter-001", "curate.semantic_dedup")])
def test_a_stage_asked_for_cuda_without_it_fails_before_touching_its_outputs(no_cuda, tmp_path, tiny_model_dir,
                                                                            capsys, stage, iteration, earlier, key):
    shutil.copytree(tiny_model_dir, tmp_path / "models/base")
    p = prompt("p0", "Say hello.", "train")
    write_prompt_sets(tmp_path, [p], [{**p, "split": "eval"}], [{**p, "split": "eval_ood"}])
    earlier = tmp_path / earlier
    earlier.mkdir(parents=True)
    (earlier / "part-00000-of-00001.parquet").write_bytes(b"an earlier run's output")
    cuda_asked = {"semantic_dedup": {"enabled": True, "model": "models/base", "device": "cuda"}} if stage == "curate" \
        else {"device": "cuda"}
    write_params(tmp_path, "unused", **{stage: cuda_asked})
    with chdir(tmp_path):
        code = main([stage, "--iteration", iteration])
    assert code != 0
    assert f"{key}.device is 'cuda', but this machine has no CUDA device" in capsys.readouterr().err
    assert (earlier / "part-00000-of-00001.parquet").read_bytes() == b"an earlier run's output"


# --- on a GPU ----------------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_custom_loop_on_cuda_equals_greedy_on_cpu(varied_model_dir, which_path):
    handler = CausalLMHandler(str(varied_model_dir), SamplingParams(0.0, max_new_tokens=12), micro_batch_size=4,
                              device="cuda")
    on_gpu = handler.load_model()
    assert on_gpu.model.device.type == "cuda"
    gpu_texts = [r.inference.text for r in handler.run_inference(requests(), on_gpu)]
    cpu_model, tokenizer = load_causal_lm(varied_model_dir)
    cpu_texts = [g.text for g in generate_batch(cpu_model, tokenizer, requests(), SamplingParams(0.0, max_new_tokens=12),
                                                4, 512)]
    assert gpu_texts == cpu_texts and len(set(cpu_texts)) > 2
    assert which_path["custom"] == 4 and which_path["fallback"] == 0


@cuda
@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_sampling_on_cuda_depends_on_seed_not_batch(varied_model_dir, tmp_path, architecture):
    model_dir = varied_model_dir if architecture == "llama" else build_model(architecture, tmp_path / "model")
    model, tokenizer = load_causal_lm(model_dir, device="cuda")
    sampling = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=8)
    together = [g.text for g in generate_batch(model, tokenizer, requests(), sampling, 8, 512)]
    one_by_one = [g.text for g in generate_batch(model, tokenizer, requests(), sampling, 1, 512)]
    assert together == one_by_one and together[0] != together[5]


@cuda
def test_judge_runs_on_cuda(varied_model_dir):
    score_requests = [ScoreRequest(f"r{n}", "Write about owls.", f"Owls answer number {n}, " + "words " * n)
                      for n in range(4)]
    scores = {}
    for device in ("cpu", "cuda"):
        for micro_batch_size in (1, 4):  # shared prefixes, and padded batches
            config = ModelJudgeConfig(enabled=True, model=str(varied_model_dir), max_input_tokens=512,
                                      micro_batch_size=micro_batch_size, dtype="float32", device=device)
            handler = RatingJudgeHandler.build(config, load_policy=LoadPolicy(), where="judge.llm_judge")
            loaded = handler.load_model()
            assert loaded.model.device.type == device
            scores[device, micro_batch_size] = [r.inference.score for r in handler.run_inference(score_requests, loaded)]
    for micro_batch_size in (1, 4):
        assert scores["cuda", micro_batch_size] == pytest.approx(scores["cpu", micro_batch_size], abs=1e-4)


@cuda
def test_embedder_runs_on_cuda(tiny_model_dir):
    texts = ["owls hoot at night", "bats", "a much longer answer about the sea and its moods"]
    vectors = {}
    for device in ("cpu", "cuda"):
        handler = SentenceEmbeddingHandler(str(tiny_model_dir), batch_size=4, max_tokens=32, device=device)
        loaded = handler.load_model()
        assert loaded.model.device.type == device
        vectors[device] = [r.inference.vector for r in handler.run_inference(texts, loaded)]
    for on_cpu, on_gpu in zip(vectors["cpu"], vectors["cuda"], strict=True):
        assert float(on_cpu @ on_gpu) == pytest.approx(1.0, abs=1e-4)


def _claim_in_child(barrier, results) -> None:
    results.put(devices.resolve("auto", "generate"))
    barrier.wait(timeout=30)  # both children hold their GPU until both have one


def test_the_processes_of_a_worker_with_several_gpus_spread_over_them(monkeypatch, tmp_path):
    """Each SDK process resolves `auto` to the GPU of the lowest slot no live process holds, modulo the GPUs: with
    this process on slot 0 and two GPUs, two more processes take cuda:1 and cuda:0 (slots 1 and 2)."""
    import multiprocessing

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(devices, "GPU_SLOTS", tmp_path / "slots")
    monkeypatch.setattr(devices, "_claim", {})
    assert devices.resolve("auto", "generate") == "cuda:0"
    assert devices.resolve("auto", "generate") == "cuda:0"  # a process keeps its GPU
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    children = [context.Process(target=_claim_in_child, args=(barrier, results)) for _ in range(2)]
    for child in children:
        child.start()
    claimed = sorted(results.get(timeout=30) for _ in children)
    for child in children:
        child.join(timeout=30)
    assert claimed == ["cuda:0", "cuda:1"]
    assert sorted(p.name for p in (tmp_path / "slots").iterdir()) == ["0.lock", "1.lock", "2.lock"]


def test_the_rows_each_device_made_are_counted_on_the_worker_and_read_back():
    import apache_beam as beam

    from pipelines.run.runtime import run_pipeline

    def build(pipeline):
        _ = (pipeline | beam.Create([("cpu", 3), ("cuda:1", 2), ("cpu", 4)])
             | beam.MapTuple(lambda device, rows: devices.count_rows(device, rows)))

    assert devices.used(run_pipeline(build, [])) == {"cpu": 7, "cuda:1": 2}
