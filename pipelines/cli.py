"""`selfsift <stage>`: one subcommand per stage, from the table `STAGES`, and per command over a project's
results (`COMMANDS`: compare, study), which take no stage lock of their own.

The Beam stages (generate, judge, curate, evaluate) take Beam pipeline options after their own
flags (optionally after `--`): `--runner DataflowRunner --project P ...`. Every flag is checked, so
a typo is refused rather than dropped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

BEAM_EPILOG = ("Beam pipeline options (--runner, --project, --region, --temp_location, ... as listed by Beam's "
               "PipelineOptions) follow this stage's own flags, optionally after `--`. Unknown flags are refused.")


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    run: Callable[[argparse.Namespace, object, list[str]], object]  # (args, config, beam flags) -> what to print
    iteration: str = ""  # help of a required --iteration flag; "" when the stage takes none
    beam: bool = False  # takes Beam pipeline options
    flags: Callable[[argparse.ArgumentParser], None] = field(default=lambda parser: None)


def _stage(name: str):
    return importlib.import_module(f"pipelines.{name}")


def _generate(args, config, beam):
    return _stage("generate").main(config, config.iteration_name(args.iteration), beam)


def _judge(args, config, beam):
    judge = _stage("judge")
    manifest = judge.main(config, config.iteration_name(args.iteration), beam)
    print(judge.calibration_table(manifest["calibration"]))
    return {k: manifest[k] for k in ("rows", "judges")}


def _revise(args, config, beam):
    manifest = _stage("revise").main(config, config.iteration_name(args.iteration), beam)
    return {k: manifest[k] for k in ("enabled", "rows", "parents")}


def _curate(args, config, beam):
    curate = _stage("curate")
    manifest = curate.main(config, config.iteration_name(args.iteration), beam)
    print(curate.funnel_table(manifest))
    return {k: manifest[k] for k in ("rows_in", "rows_out", "pairs", "kept_per_instruction_type")}


def _compare(args, config, beam):
    compare = _stage("compare")
    return compare.comparison_table(compare.compare(config, args.model_a, args.model_b), args.model_a, args.model_b)


def _compare_flags(parser: argparse.ArgumentParser) -> None:
    for name, which in (("model_a", "first"), ("model_b", "second")):
        parser.add_argument(name, help=f"the {which} model: an iteration (0 is the base model) or a folder of eval answers")


def _study_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the study: seeds, common overrides and variants (e.g. study.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the runs still to do; run nothing")
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants")
    parser.add_argument("--paired-against", nargs="+", metavar="VARIANT",
                        help="run nothing: pair every recorded run with these variants' runs of the same seed on the "
                             "same eval prompts, into reports/study_paired.json and .md")


def _study(args, config, beam):
    if args.paired_against:
        return _stage("study_paired").main(args.file, args.paired_against, config)
    return _stage("study").main(args.file, args.dry_run, args.only)


def _publish_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iteration", default="all", help="iteration number or name, or 'all' (default)")
    parser.add_argument("--repo-id", help="ORG/NAME on the Hub (default: publish.repo_id in params)")
    parser.add_argument("--private", action=argparse.BooleanOptionalAction, default=None,
                        help="create the repo private (default: publish.private in params)")
    parser.add_argument("--dry-run", action="store_true", help="only build the folder; upload nothing")


STAGES = (
    Stage("prepare-model", "convert the base model to safetensors under base_model.path",
          lambda args, config, beam: _stage("prepare_model").main(config)),
    Stage("prompts", "write the train, eval and eval_ood prompt sets",
          lambda args, config, beam: _stage("prompts").main(config)),
    Stage("generate", "sample candidates (Beam)", _generate, iteration="iteration number (1) or name (iter-001)",
          beam=True),
    Stage("judge", "judge candidates (Beam)", _judge, iteration="iteration number (1) or name (iter-001)", beam=True),
    Stage("revise", "revise failed candidates with the checker's feedback, and judge the revisions (Beam)", _revise,
          iteration="iteration number (1) or name (iter-001)", beam=True),
    Stage("curate", "filter and deduplicate into shards (Beam)", _curate,
          iteration="iteration number (1) or name (iter-001)", beam=True),
    Stage("validate", "run the expectation suites over the iteration's records",
          lambda args, config, beam: {"success": _stage("validate").main(config, config.iteration_name(
              args.iteration))["success"]}, iteration="iteration number (1) or name (iter-001)"),
    Stage("finetune", "fine-tune the generator on the shards",
          lambda args, config, beam: _stage("finetune").main(config, config.iteration_name(args.iteration)),
          iteration="iteration number (1) or name (iter-001)"),
    Stage("evaluate", "score a model on the held-out prompts (Beam)",
          lambda args, config, beam: _stage("evaluate").main(config, args.iteration, beam),
          iteration="iteration number or name; 0 is the base model", beam=True),
    Stage("report", "record this run in reports/runs/ and write reports/summary.md with figures",
          lambda args, config, beam: str(_stage("report").main(config))),
    Stage("publish", "build the Hugging Face Hub dataset folder and upload it",
          lambda args, config, beam: _stage("publish").main(config, args.iteration, args.repo_id, args.private,
                                                            args.dry_run),
          flags=_publish_flags),
)
COMMANDS = (
    Stage("compare", "paired difference of two models on the same eval prompts, with McNemar's exact test",
          _compare, flags=_compare_flags),
    Stage("study", "run each variant of a study with each seed as a DVC experiment, skipping recorded runs",
          _study, flags=_study_flags),
)
BY_NAME = {stage.name: stage for stage in (*STAGES, *COMMANDS)}


def parser() -> argparse.ArgumentParser:
    params_help = "parameters file (default: params.yaml)"
    top = argparse.ArgumentParser(prog="selfsift", description=__doc__, allow_abbrev=False,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--params", default="params.yaml", help=params_help)
    sub = top.add_subparsers(dest="stage", required=True)
    for stage in BY_NAME.values():
        sp = sub.add_parser(stage.name, help=stage.help, description=stage.help, allow_abbrev=False,
                            epilog=BEAM_EPILOG if stage.beam else None)
        sp.add_argument("--params", default=argparse.SUPPRESS, help=params_help)  # here too, after the stage
        if stage.iteration:
            sp.add_argument("--iteration", required=True, help=stage.iteration)
        stage.flags(sp)
    return top


def unknown_beam_flags(flags: list[str]) -> list[str]:
    """The flags no Beam PipelineOptions class declares (Beam itself would drop them with a warning)."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    beam_parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(beam_parser)
    return beam_parser.parse_known_args(flags)[1]


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(stage arguments, Beam flags); exits with a usage error on any flag nobody declares."""
    top = parser()
    args, extra = top.parse_known_args(argv)
    stage = BY_NAME[args.stage]
    beam = extra[1:] if extra[:1] == ["--"] else extra
    if beam and not stage.beam:
        top.error(f"{stage.name} takes no Beam options; unrecognized arguments: {' '.join(beam)}")
    if unknown := unknown_beam_flags(beam):
        top.error(f"unrecognized arguments for {stage.name}: {' '.join(unknown)} (neither a flag of the stage, see "
                  f"`selfsift {stage.name} --help`, nor a Beam pipeline option)")
    return args, beam


def run(argv: list[str]) -> object:
    args, beam = parse(argv)
    from pipelines import config as config_module

    config = config_module.load(args.params)
    return BY_NAME[args.stage].run(args, config, beam)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("selfsift").setLevel(logging.INFO)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from pipelines.config import ConfigError
    from pipelines.curate import JudgeRefused
    from pipelines.run_guard import StageBusy
    from pipelines.validate import ValidationFailed
    from transforms.prompts.prompt_reader import PromptFileError

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
