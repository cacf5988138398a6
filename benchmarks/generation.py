"""Generation throughput: the generate stage's handler against transformers and llama.cpp.

Same 32 train prompts, same sampling (temperature 0.8, top-p 0.95), 64 new tokens at most, for
every path; output tokens are counted up to the end-of-sequence token. Run: python -m benchmarks.generation
"""

from __future__ import annotations

import argparse

from benchmarks.common import BASE_MODEL, GGUF, print_table, stopwatch, write_result
from transforms.generation.hf_generation import CausalLMHandler, GenerationRequest, SamplingParams
from transforms.prompts.prompt_builder import build_split

SAMPLING = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=64)


def workload(n: int, per_prompt: int = 1) -> list[GenerationRequest]:
    """n train prompts, each `per_prompt` times with its own seed (the generate stage's K candidates)."""
    prompts = build_split("train", n, seed=1234)
    if per_prompt == 1:
        return [GenerationRequest(key=p["prompt_id"], messages=(("user", p["messages"][0]["content"]),), seed=i)
                for i, p in enumerate(prompts)]
    return [GenerationRequest(key=f"{p['prompt_id']}-{k}", messages=(("user", p["messages"][0]["content"]),),
                              seed=per_prompt * i + k)
            for i, p in enumerate(prompts) for k in range(per_prompt)]


def selfsift_handler(requests, dtype: str, micro_batch_size: int) -> dict:
    handler = CausalLMHandler(BASE_MODEL, SAMPLING, micro_batch_size=micro_batch_size, dtype=dtype)
    model = handler.load_model()
    with stopwatch() as t:
        results = list(handler.run_inference(requests, model))
    return {"tokens": sum(r.inference.completion_tokens for r in results), "seconds": t["seconds"]}


def transformers_generate(requests, batch_size: int) -> dict:
    """Plain `generate` with sampling, `batch_size` prompts at a time (left padded), float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(BASE_MODEL, dtype=torch.float32).eval()
    chats = [[{"role": r, "content": c} for r, c in req.messages] for req in requests]
    torch.manual_seed(0)
    tokens = 0
    with stopwatch() as t:
        for start in range(0, len(chats), batch_size):
            batch = tokenizer.apply_chat_template(chats[start : start + batch_size], add_generation_prompt=True,
                                                  padding=True, return_tensors="pt", return_dict=True)
            with torch.inference_mode():
                out = model.generate(**batch, max_new_tokens=SAMPLING.max_new_tokens, do_sample=True,
                                     temperature=SAMPLING.temperature, top_p=SAMPLING.top_p, top_k=0,
                                     pad_token_id=tokenizer.pad_token_id)
            for row in out[:, batch["input_ids"].shape[1]:].tolist():
                tokens += row.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in row else len(row)
    return {"tokens": tokens, "seconds": t["seconds"]}


def llama_cpp(requests, threads: int) -> dict:
    """llama-cpp-python on the same GGUF file (Q4_1), one request at a time: its high-level API has
    no batched decoding of independent sequences."""
    from llama_cpp import Llama

    llm = Llama(model_path=GGUF, n_ctx=1024, n_threads=threads, n_batch=512, seed=0, verbose=False)
    tokens = 0
    with stopwatch() as t:
        for i, req in enumerate(requests):
            out = llm.create_chat_completion([{"role": r, "content": c} for r, c in req.messages],
                                             max_tokens=SAMPLING.max_new_tokens, temperature=SAMPLING.temperature,
                                             top_p=SAMPLING.top_p, top_k=0, min_p=0.0, seed=i)
            tokens += out["usage"]["completion_tokens"]
    return {"tokens": tokens, "seconds": t["seconds"]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--skip-llama-cpp", action="store_true", help="when the bench extra is not installed")
    args = parser.parse_args(argv)
    requests = workload(args.prompts)
    import torch

    threads = torch.get_num_threads()
    paths = {
        "transformers generate, one prompt at a time (float32)": lambda: transformers_generate(requests, 1),
        "transformers generate, batches of 32 (float32)": lambda: transformers_generate(requests, 32),
        "selfsift generate handler (float32)": lambda: selfsift_handler(requests, "float32", 32),
        "selfsift generate handler (bfloat16, the stage default)": lambda: selfsift_handler(requests, "bfloat16", 32),
    }
    if not args.skip_llama_cpp:
        paths[f"llama.cpp via llama-cpp-python, Q4_1 GGUF, one request at a time, {threads} threads"] = \
            lambda: llama_cpp(requests, threads)
    rows = {}
    for name, run in paths.items():
        measured = run()
        rows[name] = {**measured, "tokens_per_second": measured["tokens"] / measured["seconds"]}
        print(f"{name}: {rows[name]['tokens']} tokens in {measured['seconds']:.1f} s", flush=True)
    ours = rows["selfsift generate handler (bfloat16, the stage default)"]["tokens_per_second"]
    table = [[name, r["tokens"], r["seconds"], r["tokens_per_second"], ours / r["tokens_per_second"]]
             for name, r in rows.items()]
    print_table(f"Generation, {args.prompts} prompts, <= {SAMPLING.max_new_tokens} sampled tokens each",
                ["path", "tokens", "seconds", "tokens/s", "selfsift (bf16) speed-up"], table)
    result = {"workload": {"prompts": args.prompts, **SAMPLING.__dict__}, "paths": rows}
    write_result("generation", result)
    return result


if __name__ == "__main__":
    main()
