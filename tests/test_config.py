import dataclasses
import typing

import pytest
import yaml

from pipelines.config import ConfigError, CurateConfig, JudgeConfig, iteration_name, load
from transforms.curation.chain import CHAIN
from transforms.curation.config import CurateStageConfig
from transforms.judges.config import JudgeStageConfig
from transforms.judges.contract import JudgeSettings
from transforms.judges.registry import JUDGES

BASE = {"seed": 1, "base_model": {"source": "m.gguf"},
        "iterations": {"iter-001": {"generator": "base"}, "iter-002": {"generator": "iter-001"}}}


def write(tmp_path, data):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def with_section(section, values):
    return {**BASE, section: values}


def test_repo_params_load():
    config = load("params.yaml")
    assert list(config.iterations) == ["iter-001", "iter-002"]
    assert config.generator_dir("iter-002") == "models/iter-001"
    assert config.generator_dir("iter-001") == config.base_model.path


def test_defaults_and_float_strings(tmp_path):
    config = load(write(tmp_path, with_section("finetune", {"learning_rate": "5e-5"})))
    assert config.finetune.learning_rate == 5e-5
    assert config.generate.candidates_per_prompt >= 1


@pytest.mark.parametrize("section, values, message", [
    ("generate", {"candidates_per_prompt": 0}, "generate.candidates_per_prompt must be at least 1"),
    ("generate", {"temperature": -0.1}, "generate.temperature must be >= 0"),
    ("generate", {"temprature": 0.5}, "unknown key(s) temprature"),
    ("curate", {"min_score": 1.5}, "curate.min_score must be in [0, 1]"),
    ("curate", {"max_per_prompt": "two"}, "curate.max_per_prompt: expected int"),
    ("finetune", {"data": "everything"}, "finetune.data must be"),
    ("curate", {"weights": {"oracle": 1.0}}, "curate.weights: 'oracle' is not one of"),
    ("curate", {"weights": {"ifeval_verifier": 0.0}}, "at least one judge needs weight > 0"),
    ("curate", {"weights": {"reward_model": 1.0}}, "curate.weights.reward_model > 0 but judge.reward_model is not enabled"),
    ("curate", {"combine": "vote"}, "curate.combine must be"),
    ("curate", {"near_dedup": {"num_perm": 128, "bands": 10}}, "curate.near_dedup.bands must be at least 1 and divide"),
    ("curate", {"allow_low_auc_judges": "llm_judge"}, "curate.allow_low_auc_judges: expected a list"),
    ("curate", {"decontamination": {"extra_eval_files": [3]}}, "extra_eval_files[0]: expected str"),
    ("judge", {"reward_model": {"enabled": True}}, "judge.reward_model.model must name a model folder"),
    ("judge", {"heuristics": {"min_words": 5, "max_words": 2}}, "judge.heuristics.max_words must be >= min_words"),
    ("bogus", {}, "unknown key(s) bogus"),
])
def test_bad_values_are_named(tmp_path, section, values, message):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, with_section(section, values)))
    assert message in str(err.value)


def test_iterations_must_chain(tmp_path):
    bad = {**BASE, "iterations": {"iter-001": {"generator": "iter-002"}}}
    with pytest.raises(ConfigError, match="must be 'base' or an earlier iteration"):
        load(write(tmp_path, bad))
    with pytest.raises(ConfigError, match="must be written as iter-001"):
        load(write(tmp_path, {**BASE, "iterations": {"1": {"generator": "base"}}}))


def test_missing_required_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="missing required key 'base_model'"):
        load(write(tmp_path, {"seed": 1}))
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.yaml")


def test_iteration_names():
    assert iteration_name(3) == iteration_name("3") == iteration_name("iter-003") == "iter-003"
    with pytest.raises(ConfigError):
        iteration_name("third")
    config = load("params.yaml")
    with pytest.raises(ConfigError, match="iter-009 is not listed"):
        config.iteration_name(9)



def _declared(pairs, what):
    """{section: its settings class} of the registry's judges or the chain's steps with settings, in order."""
    sections = {}
    for key, cls in pairs:
        if cls is not None:
            known = sections.setdefault(key, cls)
            assert known is cls, f"{what} section {key!r} is read as both {known.__name__} and {cls.__name__}"
    return sections


@pytest.mark.parametrize("config_class, base, what, pairs", [
    (JudgeConfig, JudgeStageConfig, "judge", [(spec.params_key, spec.config) for spec in JUDGES]),
    (CurateConfig, CurateStageConfig, "curation step", [(step.section, step.config) for step in CHAIN]),
], ids=["judge", "curate"])
def test_every_section_with_settings_is_a_field_of_its_config_class(config_class, base, what, pairs):
    """A judge or step with settings adds its field to the config class: the same name and class, in order."""
    wanted = _declared(pairs, what)
    hints = typing.get_type_hints(config_class)
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    name = config_class.__name__
    for key, cls in wanted.items():
        assert key in fields, f"{what} section {key!r} is missing from {name}: add " \
                              f"`{key}: {cls.__name__} = field(default_factory={cls.__name__})`"
        assert hints[key] is cls and fields[key].default_factory is cls, \
            f"{name}.{key} is a {hints[key]} defaulting to {fields[key].default_factory}, but the {what} reads it " \
            f"as {cls.__name__}"
    own = [f.name for f in dataclasses.fields(config_class) if f.name not in {g.name for g in dataclasses.fields(base)}]
    assert own == list(wanted), f"{name}'s own fields must be the {what} sections with settings, in order: {list(wanted)}"


def test_every_judge_settings_class_answers_the_stages():
    for spec in JUDGES:
        assert spec.config is None or issubclass(spec.config, JudgeSettings), \
            f"judge {spec.name}: {spec.config.__name__} must subclass JudgeSettings (transforms/judges/contract.py)"
