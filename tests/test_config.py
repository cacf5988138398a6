import pytest
import yaml

from pipelines.config import ConfigError, iteration_name, load

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
