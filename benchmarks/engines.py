"""Generation engine bake-off: the generate stage's handler against CPU inference engines, on one
workload, at equal sampling (temperature 0.8, top-p 0.95, full vocabulary, same K and token limit).

Two shapes: the generation benchmark's (32 prompts x 1 sample, <= 64 new tokens) and the generate
stage's (64 prompts x K=4, <= 128 new tokens, micro-batches of 128 sequences). Each (engine, shape)
runs in its own process, so its peak memory (VmHWM) is its own, and is timed on its second pass over
the workload (the first warms the process up). Each engine's model is converted
once, in this process, and timed. Quality: the share of samples that pass every IFEval check of
their prompt (the verifier judge, strict), with its 95 % Wilson interval, since int8 weights change
the text. An engine that cannot run here is a row with the reason, not a missing row.

OpenVINO's converter (optimum-intel) pins an older transformers than this project does, so it runs
from a separate environment: `--optimum-cli PATH` or $OPTIMUM_CLI (`make bench` makes one: OV_EXPORT in the
Makefile).
Run: python -m benchmarks.engines
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from benchmarks.common import BASE_MODEL, GGUF, peak_rss_mib, print_table, stopwatch, write_result
from benchmarks.generation import SAMPLING, workload

BASELINE = "selfsift handler, bfloat16"


@dataclass(frozen=True)
class Shape:
    prompts: int
    per_prompt: int  # K samples per prompt, each with its own seed where the engine allows it
    max_new_tokens: int
    micro_batch_size: int  # sequences decoded together


SHAPES = {
    "benchmark": Shape(prompts=32, per_prompt=1, max_new_tokens=64, micro_batch_size=32),
    "stage": Shape(prompts=64, per_prompt=4, max_new_tokens=128, micro_batch_size=128),
}


@dataclass(frozen=True)
class Engine:
    kind: str  # selfsift, ctranslate2, openvino, llama_cpp
    variant: str  # dtype, CTranslate2 compute type, OpenVINO weight format


ENGINES = {
    "selfsift handler, float32": Engine("selfsift", "float32"),
    BASELINE: Engine("selfsift", "bfloat16"),
    "CTranslate2, int8": Engine("ctranslate2", "int8"),
    "CTranslate2, int8_bfloat16": Engine("ctranslate2", "int8_bfloat16"),
    "CTranslate2, bfloat16": Engine("ctranslate2", "bfloat16"),
    "CTranslate2, float32": Engine("ctranslate2", "float32"),
    "OpenVINO GenAI continuous batching, int8 weights": Engine("openvino", "int8"),
    "llama.cpp via llama-cpp-python, Q4_1 GGUF, one request at a time": Engine("llama_cpp", "Q4_1"),
}


def prompt_ids(tokenizer, requests) -> list[list[int]]:
    """The chat-templated prompt tokens, exactly as the generate stage builds them."""
    encoded = [tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in req.messages],
                                             add_generation_prompt=True, tokenize=True, return_dict=False)
               for req in requests]
    return [list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids) for ids in encoded]


# Each runner returns one (text, completion tokens) per request, in request order; completion tokens
# stop before the end-of-sequence token, as the handler counts them.

def run_selfsift(engine: Engine, model: str, shape: Shape, requests, threads: int) -> list[tuple[str, int]]:
    from transforms.generation.hf_generation import CausalLMHandler

    handler = CausalLMHandler(BASE_MODEL, sampling(shape), micro_batch_size=shape.micro_batch_size,
                              max_batch_size=len(requests), dtype=engine.variant)
    loaded = handler.load_model()
    return [(r.inference.text, r.inference.completion_tokens) for r in handler.run_inference(requests, loaded)]


def run_ctranslate2(engine: Engine, model: str, shape: Shape, requests, threads: int) -> list[tuple[str, int]]:
    """generate_batch over distinct prompts, num_hypotheses=K samples each (one prefill per prompt).
    sampling_topk=0 samples from the full vocabulary (RandomSampler restricts only for 0 < k < vocab).
    One seed for the whole run, set before the generator exists (its worker thread reads it when it
    starts): a sample depends on its batch, unlike the handler's."""
    import ctranslate2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL)
    ctranslate2.set_random_seed(0)
    generator = ctranslate2.Generator(model, device="cpu", compute_type=engine.variant, intra_threads=threads)
    distinct = requests[:: shape.per_prompt]
    tokens = [tokenizer.convert_ids_to_tokens(ids) for ids in prompt_ids(tokenizer, distinct)]
    results = generator.generate_batch(
        tokens, max_batch_size=max(1, shape.micro_batch_size // shape.per_prompt), num_hypotheses=shape.per_prompt,
        max_length=shape.max_new_tokens, sampling_topk=0, sampling_topp=SAMPLING.top_p,
        sampling_temperature=SAMPLING.temperature, include_prompt_in_result=False, end_token=tokenizer.eos_token)
    return [(tokenizer.decode(ids, skip_special_tokens=True), len(ids)) for r in results for ids in r.sequences_ids]


def run_openvino(engine: Engine, model: str, shape: Shape, requests, threads: int) -> list[tuple[str, int]]:
    """ContinuousBatchingPipeline (paged KV cache), one GenerationConfig per request with its own seed."""
    import numpy as np
    import openvino as ov
    import openvino_genai
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL)
    scheduler = openvino_genai.SchedulerConfig()
    scheduler.max_num_seqs = shape.micro_batch_size
    scheduler.enable_prefix_caching = True  # a prompt's K samples and the shared system prompt prefill once
    pipe = openvino_genai.ContinuousBatchingPipeline(model, scheduler, "CPU", {"INFERENCE_NUM_THREADS": threads})
    configs = []
    for req in requests:
        config = openvino_genai.GenerationConfig()
        config.do_sample, config.temperature, config.top_p = True, SAMPLING.temperature, SAMPLING.top_p  # top_k: off by default
        config.max_new_tokens, config.rng_seed = shape.max_new_tokens, req.seed
        config.eos_token_id = tokenizer.eos_token_id
        configs.append(config)
    inputs = [ov.Tensor(np.array([ids], dtype=np.int64)) for ids in prompt_ids(tokenizer, requests)]
    outputs = []
    for result in pipe.generate(inputs, configs):
        ids = list(result.m_generation_ids[0])
        ids = ids[: ids.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in ids else ids
        outputs.append((tokenizer.decode(ids, skip_special_tokens=True), len(ids)))
    return outputs


def run_llama_cpp(engine: Engine, model: str, shape: Shape, requests, threads: int) -> list[tuple[str, int]]:
    """Its high-level API has no batched decoding of independent sequences: one request at a time."""
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_ctx=1024, n_threads=threads, n_batch=512, seed=0, verbose=False)
    outputs = []
    for req in requests:
        out = llm.create_chat_completion([{"role": r, "content": c} for r, c in req.messages],
                                         max_tokens=shape.max_new_tokens, temperature=SAMPLING.temperature,
                                         top_p=SAMPLING.top_p, top_k=0, min_p=0.0, seed=req.seed)
        outputs.append((out["choices"][0]["message"]["content"], out["usage"]["completion_tokens"]))
    return outputs


RUNNERS = {"selfsift": run_selfsift, "ctranslate2": run_ctranslate2, "openvino": run_openvino,
           "llama_cpp": run_llama_cpp}


def sampling(shape: Shape):
    from transforms.generation.hf_generation import SamplingParams

    return SamplingParams(temperature=SAMPLING.temperature, top_p=SAMPLING.top_p, top_k=0,
                          max_new_tokens=shape.max_new_tokens)


def measure(name: str, shape: Shape, model: str) -> dict:
    """The child process: one engine on one shape."""
    import torch

    engine = ENGINES[name]
    requests = workload(shape.prompts, shape.per_prompt)
    threads = torch.get_num_threads()
    # The whole workload once untimed first: a stage decodes far more than this in one process, so the
    # one-off costs of a cold process (kernels built per matrix shape, graph compilation) are not its speed.
    RUNNERS[engine.kind](engine, model, shape, requests, threads)
    cpu_before = os.times()
    with stopwatch() as t:
        outputs = RUNNERS[engine.kind](engine, model, shape, requests, threads)
    cpu = os.times()
    # Loading is inside the stopwatch for every engine alike (a second or two for this model).
    tokens = sum(n for _, n in outputs)
    return {"tokens": tokens, "seconds": t["seconds"], "tokens_per_second": tokens / t["seconds"],
            "cpu_seconds": (cpu.user - cpu_before.user) + (cpu.system - cpu_before.system),
            "threads": threads, "peak_rss_mib": peak_rss_mib(), "texts": [text for text, _ in outputs]}


# Conversion: once per engine and variant, in the parent, timed. Returns the model path or a reason.

def unsupported_ctranslate2(variant: str) -> str | None:
    import ctranslate2

    supported = ctranslate2.get_supported_compute_types("cpu")
    if variant not in supported:
        return (f"compute type {variant} is not supported on this CPU by the ctranslate2 {ctranslate2.__version__} "
                f"wheel (supported: {', '.join(sorted(supported))})")
    return None


def convert(engine: Engine, scratch: Path, optimum_cli: str | None) -> tuple[str | None, float, str | None]:
    """(model path, conversion seconds, reason it cannot run)."""
    if engine.kind == "selfsift":
        return BASE_MODEL, 0.0, None
    if engine.kind == "llama_cpp":
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            return None, 0.0, "llama-cpp-python is not installed (the bench extra)"
        return GGUF, 0.0, None
    out = scratch / f"{engine.kind}-{engine.variant}"
    if engine.kind == "ctranslate2":
        reason = unsupported_ctranslate2(engine.variant)
        if reason:
            return None, 0.0, reason
        from ctranslate2.converters import TransformersConverter

        with stopwatch() as t:
            TransformersConverter(BASE_MODEL).convert(str(out), quantization=engine.variant, force=True)
        return str(out), t["seconds"], None
    if not optimum_cli:
        return None, 0.0, ("no optimum-cli: optimum-intel (OpenVINO's converter) requires transformers <= 5.5, this "
                           "project pins 5.24; pass --optimum-cli from a separate environment")
    with stopwatch() as t:
        done = subprocess.run([optimum_cli, "export", "openvino", "--model", BASE_MODEL, "--task",
                               "text-generation-with-past", "--weight-format", engine.variant, str(out)],
                              capture_output=True, text=True)
    if done.returncode != 0:
        return None, 0.0, f"optimum-cli export failed: {done.stderr.strip().splitlines()[-1:]}"
    return str(out), t["seconds"], None


def pass_rate(texts: list[str], shape: Shape) -> dict:
    """Samples that pass every IFEval check of their prompt (strict), with the 95 % Wilson interval."""
    from transforms.health.intervals import wilson
    from transforms.judges.ifeval_verifier import verify
    from transforms.prompts.prompt_builder import build_split

    prompts = [p for p in build_split("train", shape.prompts, seed=1234) for _ in range(shape.per_prompt)]
    passed = sum(verify(text, p["instruction_ids"], p["kwargs"], p["messages"][0]["content"]).passed
                 for text, p in zip(texts, prompts, strict=True))
    low, high = wilson(passed, len(texts))
    return {"samples": len(texts), "passed": passed, "pass_rate": passed / len(texts), "low": low, "high": high}


def run_child(name: str, shape: Shape, model: str) -> dict:
    child = subprocess.run([sys.executable, "-m", "benchmarks.engines", "--one", name, json.dumps(asdict(shape)), model],
                           capture_output=True, text=True)
    if child.returncode != 0:
        return {"error": child.stderr.strip()[-2000:]}
    return json.loads(child.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="*", default=list(ENGINES), help="names as in ENGINES")
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--stage-prompts", type=int, default=SHAPES["stage"].prompts,
                        help="prompts of the stage's shape (fewer for a quick run; the result records the shapes)")
    parser.add_argument("--skip-llama-cpp", action="store_true", help="when the bench extra is not installed")
    parser.add_argument("--optimum-cli", default=os.environ.get("OPTIMUM_CLI") or shutil.which("optimum-cli"),
                        help="optimum-cli of an environment with optimum-intel (OpenVINO conversion); default: "
                             "$OPTIMUM_CLI, else the one on PATH")
    parser.add_argument("--one", nargs=3, metavar=("ENGINE", "SHAPE", "MODEL"), help=argparse.SUPPRESS)  # the child
    args = parser.parse_args(argv)
    if args.one:
        name, shape, model = args.one
        print(json.dumps(measure(name, Shape(**json.loads(shape)), model)))
        return {}
    shapes = {n: SHAPES[n] for n in args.shapes}
    if "stage" in shapes:
        shapes["stage"] = replace(shapes["stage"], prompts=args.stage_prompts)
    names = [n for n in args.engines if not (args.skip_llama_cpp and ENGINES[n].kind == "llama_cpp")]
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            model, convert_seconds, reason = convert(ENGINES[name], Path(scratch), args.optimum_cli)
            rows[name] = {**asdict(ENGINES[name]), "conversion_seconds": convert_seconds, "shapes": {}}
            if reason:
                rows[name]["not_run"] = reason
                print(f"{name}: not run, {reason}", flush=True)
                continue
            for shape_name, shape in shapes.items():
                measured = run_child(name, shape, model)
                if "error" in measured:
                    rows[name]["shapes"][shape_name] = measured
                    print(f"{name}, {shape_name}: failed\n{measured['error']}", flush=True)
                    continue
                texts = measured.pop("texts")
                rows[name]["shapes"][shape_name] = {**measured, "quality": pass_rate(texts, shape),
                                                    "first_text": texts[0]}
                print(f"{name}, {shape_name}: {measured['tokens']} tokens in {measured['seconds']:.1f} s", flush=True)
    for shape_name, shape in shapes.items():
        ours = rows.get(BASELINE, {}).get("shapes", {}).get(shape_name, {}).get("tokens_per_second")
        table = []
        for name, row in rows.items():
            m = row["shapes"].get(shape_name)
            if not m or "error" in m:
                table.append([name, "-", "-", "-", "-", "-", row.get("not_run", "failed")[:60]])
                continue
            q = m["quality"]
            table.append([name, m["tokens_per_second"], f"{m['tokens_per_second'] / ours:.2f}x" if ours else "-",
                          m["peak_rss_mib"], row["conversion_seconds"],
                          f"{q['pass_rate']:.3f} [{q['low']:.3f}, {q['high']:.3f}]", ""])
        print_table(f"Engines, {shape_name} shape: {shape.prompts} prompts x {shape.per_prompt}, "
                    f"<= {shape.max_new_tokens} tokens, micro-batch {shape.micro_batch_size}",
                    ["engine", "tokens/s", f"vs {BASELINE}", "peak MiB", "conversion s", "verifier pass [95 %]",
                     "not run"], table)
    result = {"sampling": {"temperature": SAMPLING.temperature, "top_p": SAMPLING.top_p, "top_k": 0},
              "shapes": {n: asdict(s) for n, s in shapes.items()}, "engines": rows}
    write_result("engines", result)
    return result


if __name__ == "__main__":
    main()
