import json
import re
import subprocess
import sys

import pytest

from pipelines.cli import main
from tests.stage_fixtures import chdir, write_params


def run(tmp_path, capsys, *argv):
    with chdir(tmp_path):
        code = main(list(argv))
    return code, capsys.readouterr()


def test_prompts_stage_writes_three_sets(tmp_path, capsys):
    write_params(tmp_path, "unused", prompts={"train_size": 8, "eval_size": 4, "eval_ood_size": 4})
    code, out = run(tmp_path, capsys, "prompts")
    assert code == 0, out.err
    assert sorted(p.name for p in (tmp_path / "data/prompts").iterdir()) == ["eval.parquet", "eval_ood.parquet", "train.parquet"]


def test_log_lines_carry_their_time(tmp_path):
    """The stages import Beam, whose import logs a warning; the CLI sets logging up before, so its format holds."""
    write_params(tmp_path, "unused", prompts={"train_size": 8, "eval_size": 4, "eval_ood_size": 4})
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "prompts"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ selfsift INFO selfsift prompts finished in", done.stderr,
                     re.M), done.stderr[-2000:]


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "ok"}\n{"prompt": "broken"\n', "prompts.jsonl:2: invalid JSON"),
    ("", "prompts.jsonl: no prompts in file"),
])
def test_bad_prompt_file_fails_clearly_and_keeps_earlier_output(tmp_path, capsys, content, message):
    write_params(tmp_path, "unused", prompts={"train_size": 8, "eval_size": 4, "eval_ood_size": 4})
    assert run(tmp_path, capsys, "prompts")[0] == 0
    before = (tmp_path / "data/prompts/train.parquet").read_bytes()
    (tmp_path / "prompts.jsonl").write_text(content)
    write_params(tmp_path, "unused", prompts={"source": "prompts.jsonl", "eval_size": 4, "eval_ood_size": 4})
    code, out = run(tmp_path, capsys, "prompts")
    assert code == 2
    assert message in out.err and "Traceback" not in out.err
    assert (tmp_path / "data/prompts/train.parquet").read_bytes() == before


def test_bad_params_named_before_any_work(tmp_path, capsys):
    write_params(tmp_path, "unused", generate={"candidates_per_prompt": 0})
    code, out = run(tmp_path, capsys, "generate", "--iteration", "1")
    assert code == 2 and "generate.candidates_per_prompt must be at least 1" in out.err
    assert not (tmp_path / "data").exists()


def test_unknown_flags_refused_for_non_beam_stages(tmp_path, capsys):
    write_params(tmp_path, "unused")
    with pytest.raises(SystemExit):
        run(tmp_path, capsys, "finetune", "--iteration", "1", "--runner", "DirectRunner")


def test_params_flag_after_the_stage_is_used(tmp_path, capsys):
    write_params(tmp_path, "unused", prompts={"train_size": 8, "eval_size": 4, "eval_ood_size": 4})
    (tmp_path / "params.yaml").rename(tmp_path / "other.yaml")
    code, out = run(tmp_path, capsys, "prompts", "--params", "other.yaml")
    assert code == 0, out.err
    assert json.loads(out.out) == {"train": 8, "eval": 4, "eval_ood": 4}
    code, out = run(tmp_path, capsys, "generate", "--iteration", "1", "--params", "missing.yaml")
    assert code == 2 and "missing.yaml: parameters file not found" in out.err


@pytest.mark.parametrize("argv", [
    ["generate", "--iteration", "1", "--runer", "DirectRunner"],
    ["generate", "--iteration", "1", "--", "--runer", "DirectRunner"],
    ["curate", "--iteration", "1", "--num-shards", "3"],
])
def test_unknown_flags_are_refused_for_beam_stages_too(tmp_path, capsys, argv):
    write_params(tmp_path, "unused")
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, capsys, *argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err and argv[-2] in err


def test_beam_options_reach_the_stage():
    from pipelines.cli import parse

    args, beam = parse(["judge", "--iteration", "2", "--runner", "DirectRunner", "--direct_num_workers", "2"])
    assert (args.stage, args.iteration, args.params) == ("judge", "2", "params.yaml")
    assert beam == ["--runner", "DirectRunner", "--direct_num_workers", "2"]
    assert parse(["evaluate", "--iteration", "0", "--", "--runner", "DirectRunner"])[1] == ["--runner", "DirectRunner"]


def test_every_stage_lists_its_flags_in_help(capsys):
    from pipelines.cli import by_name, parser

    for stage in by_name().values():
        with pytest.raises(SystemExit):
            parser().parse_args([stage.name, "--help"])
        text = capsys.readouterr().out
        assert "--params" in text and ("--iteration" in text) == bool(stage.each_iteration or stage.name == "publish")
        assert ("Beam pipeline options" in text) == stage.beam
