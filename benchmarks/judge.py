"""Judge throughput: the judge stage's LLM-judge handler against one forward pass per candidate.

Candidates come from the generate stage's handler (K per prompt, as in the stage), then both paths
score the same rubric inputs with the same model and dtype. Run: python -m benchmarks.judge
"""

from __future__ import annotations

import argparse

from benchmarks.common import BASE_MODEL, print_table, stopwatch, write_result
from benchmarks.generation import workload
from transforms.generation.hf_generation import CausalLMHandler, SamplingParams
from transforms.judges.llm_judge import LlmJudgeConfig, RatingJudgeHandler
from transforms.judges.scoring_models import ScoreRequest


def candidates(prompts: int, per_prompt: int) -> list[ScoreRequest]:
    generator = CausalLMHandler(BASE_MODEL, SamplingParams(0.8, 0.95, 0, 128), micro_batch_size=128,
                                dtype="bfloat16")
    requests = workload(prompts, per_prompt)
    results = generator.run_inference(requests, generator.load_model())
    return [ScoreRequest(r.example.key, r.example.messages[0][1], r.inference.text) for r in results
            if r.inference.text.strip()]


def one_forward_per_candidate(handler: RatingJudgeHandler, model, requests) -> list[float]:
    """The baseline: the whole rubric input through the model, one candidate at a time."""
    import torch

    from transforms.judges.llm_judge import expected_rating, rating_token_ids

    ratings = rating_token_ids(model.tokenizer)
    scores = []
    with torch.inference_mode():
        for request in requests:
            ids = handler.encode(model.tokenizer, request)
            logits = model.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            scores.append(expected_rating(logits[ratings].tolist())[0])
    return scores


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--candidates-per-prompt", type=int, default=4)
    args = parser.parse_args(argv)
    requests = candidates(args.prompts, args.candidates_per_prompt)
    handler = RatingJudgeHandler(LlmJudgeConfig(model=BASE_MODEL))  # the stage's defaults: prefix reuse, bfloat16
    model = handler.load_model()
    tokens = sum(len(handler.encode(model.tokenizer, r)) for r in requests)
    with stopwatch() as baseline_time:
        baseline = one_forward_per_candidate(handler, model, requests)
    with stopwatch() as ours_time:
        ours = [r.inference.score for r in handler.run_inference(requests, model)]
    n = len(requests)
    rows = {
        "one forward pass per candidate": {"seconds": baseline_time["seconds"], "candidates_per_second":
                                           n / baseline_time["seconds"]},
        "selfsift judge handler (shared prompt prefix)": {"seconds": ours_time["seconds"], "candidates_per_second":
                                                          n / ours_time["seconds"]},
    }
    speedup = baseline_time["seconds"] / ours_time["seconds"]
    max_difference = max(abs(a - b) for a, b in zip(ours, baseline))
    print_table(f"LLM judge, {n} candidates ({args.candidates_per_prompt} per prompt), {tokens} rubric tokens, bfloat16",
                ["path", "seconds", "candidates/s", "speed-up"],
                [[name, r["seconds"], r["candidates_per_second"], baseline_time["seconds"] / r["seconds"]]
                 for name, r in rows.items()])
    print(f"  largest score difference between the paths: {max_difference:.4f} (bfloat16; float32 tests: < 1e-4)")
    result = {"workload": {"candidates": n, "per_prompt": args.candidates_per_prompt, "rubric_tokens": tokens},
              "paths": rows, "speedup": speedup, "max_score_difference": max_difference}
    write_result("judge", result)
    return result


if __name__ == "__main__":
    main()
