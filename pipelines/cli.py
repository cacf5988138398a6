"""`selfsift <stage>`: one subcommand per stage of the stage table (pipelines/stage_table.py), and per command
over a project's results (`COMMANDS`: compare, study), which take no stage lock of their own.

The Beam stages (generate, judge, curate, evaluate) take Beam pipeline options after their own
flags (optionally after `--`): `--runner DataflowRunner --project P ...`. Every flag is checked, so
a typo is refused rather than dropped.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from pipelines.stage import Stage

BEAM_EPILOG = ("Beam pipeline options (--runner, --project, --region, --temp_location, ... as listed by Beam's "
               "PipelineOptions) follow this stage's own flags, optionally after `--`. Unknown flags are refused.")


def _compare(args, config, beam):
    from pipelines.study import compare

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
        from pipelines.study import paired

        return paired.main(args.file, args.paired_against, config)
    from pipelines.study import runner

    return runner.main(args.file, args.dry_run, args.only)


COMMANDS = (
    Stage("compare", "paired difference of two models on the same eval prompts, with McNemar's exact test",
          _compare, flags=_compare_flags),
    Stage("study", "run each variant of a study with each seed as a DVC experiment, skipping recorded runs",
          _study, flags=_study_flags),
)


def by_name() -> dict[str, Stage]:
    """Every subcommand: the stage table's stages, then the commands. Imported here, not at the top: the stages
    import Beam, whose import logs, and `main` sets logging up first."""
    from pipelines import stage_table

    return {stage.name: stage for stage in (*stage_table.STAGES, *COMMANDS)}
ITERATION_HELP = "iteration number (1) or name (iter-001)"


def parser() -> argparse.ArgumentParser:
    params_help = "parameters file (default: params.yaml)"
    top = argparse.ArgumentParser(prog="selfsift", description=__doc__, allow_abbrev=False,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--params", default="params.yaml", help=params_help)
    sub = top.add_subparsers(dest="stage", required=True)
    for stage in by_name().values():
        sp = sub.add_parser(stage.name, help=stage.help, description=stage.help, allow_abbrev=False,
                            epilog=BEAM_EPILOG if stage.beam else None)
        sp.add_argument("--params", default=argparse.SUPPRESS, help=params_help)  # here too, after the stage
        if stage.each_iteration:
            sp.add_argument("--iteration", required=True,
                            help=ITERATION_HELP + ("; 0 is the base model" if stage.also_base else ""))
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
    stage = by_name()[args.stage]
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
    from pipelines.run.beam_options import import_plugins

    import_plugins(config.beam)  # the filesystems of a remote storage.root, for every command
    stage = by_name()[args.stage]
    if stage not in COMMANDS:
        return run_stage(stage, args, config, beam)
    return stage.run(args, config, beam)


def run_stage(stage: Stage, args: argparse.Namespace, config, beam: list[str]) -> object:
    """A stage of the table: Beam flags from params.yaml's `beam:` section before those of the command line, and
    under a remote storage root its inputs checked against their receipts and its outputs given new ones."""
    from pipelines.run import beam_options, remote_outputs
    from pipelines.stage import where_of

    if stage.beam:
        beam_options.check_flags(config.beam, unknown_beam_flags)
        beam = beam_options.flags(config.beam, stage.name) + beam
    where = where_of(stage, args, config, remote_outputs.marked(config.layout))
    with remote_outputs.receipted(stage, where, config):
        return stage.run(args, config, beam)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("selfsift").setLevel(logging.INFO)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from pipelines.config import ConfigError
    from pipelines.run.guard import StageBusy
    from pipelines.stages.curate import JudgeRefused
    from pipelines.stages.validate import ValidationFailed
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
