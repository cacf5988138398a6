"""One source per setting: params.yaml documents every key the code reads, each at the code's default,
and docs/params.md is the reference generated from the same classes."""

import dataclasses
from pathlib import Path

import yaml

from pipelines.config import Config, load
from pipelines.derived import params_doc, params_yaml

REPO = Path(__file__).resolve().parents[1]
# The run's own choices: required (no default), or tied to the chosen source.
CHOSEN = {"seed", "base_model.source", "base_model.sha256", "iterations"}


def leaves(obj, prefix=""):
    """{dotted key: value} of a config; dict-valued settings are leaves."""
    out = {}
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        out.update(leaves(value, f"{key}.") if dataclasses.is_dataclass(value) else {key: value})
    return out


def defaults_like(config: Config) -> Config:
    return Config(seed=config.seed, base_model=type(config.base_model)(source=config.base_model.source),
                  iterations=config.iterations)


def raw_keys(data: dict, prefix="") -> set[str]:
    keys = set()
    for key, value in data.items():
        keys.add(f"{prefix}{key}")
        if isinstance(value, dict):
            keys |= raw_keys(value, f"{prefix}{key}.")
    return keys


def test_every_key_in_code_is_documented_in_params_yaml():
    config = load(REPO / "params.yaml")
    listed = raw_keys(yaml.safe_load((REPO / "params.yaml").read_text()))
    missing = sorted(key for key in leaves(config) if key not in listed)
    assert not missing, f"params.yaml does not list: {missing}"


def test_params_yaml_sets_every_key_to_its_code_default():
    config = load(REPO / "params.yaml")
    ours, defaults = leaves(config), leaves(defaults_like(config))
    differ = {key: (ours[key], defaults[key]) for key in ours if key not in CHOSEN and ours[key] != defaults[key]}
    assert not differ, f"params.yaml vs code default: {differ}"


def test_a_default_that_drifts_is_caught(tmp_path):
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["finetune"]["epochs"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    config = load(tmp_path / "params.yaml")
    ours, defaults = leaves(config), leaves(defaults_like(config))
    assert [k for k in ours if ours[k] != defaults[k] and k not in CHOSEN] == ["finetune.epochs"]


def test_parameter_reference_is_current():
    assert (REPO / "docs/params.md").read_text() == params_doc.render(), \
        "docs/params.md is stale: run `python -m pipelines.derived.params_doc`"


def test_parameter_reference_lists_every_key():
    text = (REPO / "docs/params.md").read_text()
    config = load(REPO / "params.yaml")
    for key in leaves(config):
        section, _, name = key.rpartition(".")
        assert f"| `{name}` |" in text and (not section or f"`{section}`" in text), key


def test_params_yaml_is_what_the_config_classes_write():
    for folder in (REPO, REPO / "examples/json_extraction"):
        assert (folder / "params.yaml").read_text() == params_yaml.render(folder / "params.yaml"), \
            f"{folder / 'params.yaml'} is stale: run `make docs`"


def test_a_new_field_reaches_params_yaml_at_its_default_and_an_override_keeps_its_note(tmp_path):
    text = (REPO / "params.yaml").read_text().replace(
        "  max_new_tokens: 128  # an answer that hits it has finish_reason length", "  max_new_tokens: 96  # short answers")
    lines = [line for line in text.splitlines() if not line.startswith("  top_k:")]  # as if the field were new
    (tmp_path / "params.yaml").write_text("\n".join(lines) + "\n")
    written = params_yaml.render(tmp_path / "params.yaml")
    assert "\n  top_k: 0  # 0 disables top-k\n" in written
    assert "\n  max_new_tokens: 96  # short answers (default: 128)\n" in written
