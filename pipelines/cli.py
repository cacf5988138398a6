"""`selfsift`: one subcommand per stage. Beam stages pass unknown flags (--runner, ...) to Beam."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

BEAM_STAGES = ("generate", "judge", "curate", "evaluate")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfsift", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    sub = parser.add_subparsers(dest="stage", required=True)
    sub.add_parser("prepare-model", help="convert the base model to safetensors under base_model.path")
    sub.add_parser("prompts", help="write the train, eval and eval_ood prompt sets")
    for stage, text in (("generate", "sample candidates (Beam)"), ("judge", "judge candidates (Beam)"),
                        ("curate", "filter and deduplicate into shards (Beam)"),
                        ("validate", "run the expectation suite over the shards"),
                        ("finetune", "fine-tune the generator on the shards"),
                        ("evaluate", "score a model on the held-out prompts (Beam); 0 is the base model")):
        sp = sub.add_parser(stage, help=text)
        sp.add_argument("--iteration", required=True, help="iteration number (1) or name (iter-001)")
    sub.add_parser("report", help="record this run in reports/runs/ and write reports/summary.md with figures")
    pub = sub.add_parser("publish", help="build the Hugging Face Hub dataset folder and upload it")
    pub.add_argument("--iteration", default="all", help="iteration number or name, or 'all' (default)")
    pub.add_argument("--repo-id", help="ORG/NAME on the Hub (default: publish.repo_id in params)")
    pub.add_argument("--private", action=argparse.BooleanOptionalAction, default=None,
                     help="create the repo private (default: publish.private in params)")
    pub.add_argument("--dry-run", action="store_true", help="only build the folder; upload nothing")
    return parser


def run(argv: list[str]) -> object:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.stage not in BEAM_STAGES:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from pipelines import config as config_module

    config = config_module.load(args.params)
    if args.stage == "report":
        from pipelines import report

        return str(report.main(config))
    if args.stage == "prepare-model":
        from pipelines import prepare_model

        return prepare_model.main(config)
    if args.stage == "prompts":
        from pipelines import prompts

        return prompts.main(config)
    if args.stage == "publish":
        from pipelines import publish

        return publish.main(config, args.iteration, args.repo_id, args.private, args.dry_run)
    if args.stage == "evaluate":
        from pipelines import evaluate

        return evaluate.main(config, args.iteration, extra)
    iteration = config.iteration_name(args.iteration)
    if args.stage == "generate":
        from pipelines import generate

        return generate.main(config, iteration, extra)
    if args.stage == "judge":
        from pipelines import judge

        manifest = judge.main(config, iteration, extra)
        print(judge.calibration_table(manifest["calibration"]))
        return {k: manifest[k] for k in ("rows", "judges")}
    if args.stage == "curate":
        from pipelines import curate

        manifest = curate.main(config, iteration, extra)
        print(curate.funnel_table(manifest))
        return {k: manifest[k] for k in ("rows_in", "rows_out", "pairs", "kept_per_instruction_type")}
    if args.stage == "validate":
        from pipelines import validate

        return {"success": validate.main(config, iteration)["success"]}
    from pipelines import finetune

    return finetune.main(config, iteration)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("selfsift").setLevel(logging.INFO)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from pipelines.config import ConfigError
    from pipelines.curate import JudgeRefused
    from pipelines.run_guard import StageBusy
    from pipelines.validate import ValidationFailed
    from transforms.prompt_reader import PromptFileError

    argv = sys.argv[1:] if argv is None else argv
    start = time.perf_counter()
    try:
        result = run(argv)
    except (ConfigError, JudgeRefused, PromptFileError, StageBusy, ValidationFailed, FileNotFoundError,
            ValueError) as exc:
        print(f"selfsift: error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("selfsift").info("selfsift %s finished in %.1f s", " ".join(argv), time.perf_counter() - start)
    if result is not None:
        print(json.dumps(result, indent=2, default=str) if not isinstance(result, str) else result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
