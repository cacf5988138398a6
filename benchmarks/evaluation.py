"""Evaluating one model on 500-prompt eval sets: the evaluate stage's wall time for the base model.

Builds eval and eval_ood at 500 prompts each (the prompts stage, `prompts.eval_size` and
`prompts.eval_ood_size`) in a scratch folder linking this project's base model, then times
`selfsift evaluate --iteration 0` with the committed params otherwise: greedy answers to all 1,000
prompts, scored by the verifier, with the health metrics. Run: python -m benchmarks.evaluation
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from benchmarks.common import print_table, write_result
from benchmarks.iteration import PROJECT, run_stage, scratch_project


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=500, help="prompts in each of eval and eval_ood")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        scratch_project(folder, PROJECT, link_prompts=False)
        params = yaml.safe_load((folder / "params.yaml").read_text())
        params["prompts"].update(eval_size=args.prompts, eval_ood_size=args.prompts)
        (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        with open(PROJECT / "benchmarks" / "results" / "evaluation.log", "w") as log:
            run_stage(folder, "prompts", log)
            seconds = run_stage(folder, "evaluate", log, iteration="iter-000")
        metrics = json.loads((folder / "metrics" / "iter-000.json").read_text())
    answers = 2 * args.prompts
    result = {"prompts_per_set": args.prompts, "answers": answers, "seconds": seconds,
              "answers_per_second": answers / seconds,
              "max_new_tokens": params["evaluate"]["max_new_tokens"], "dtype": params["evaluate"]["dtype"],
              "accuracy": {k: v for k, v in metrics.items() if k.endswith("prompt_level_strict_acc")}}
    print_table(f"Evaluating the base model on eval and eval_ood, {args.prompts} prompts each",
                ["answers", "seconds", "answers/s", "minutes"],
                [[answers, seconds, answers / seconds, seconds / 60]])
    write_result("evaluation", result)
    return result


if __name__ == "__main__":
    main()
