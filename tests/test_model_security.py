"""Models load from safetensors, without running code shipped in the folder, unless params allow it.
The code a folder ships here leaves a mark when it runs, so a test sees whether it ran."""

import json
import pickle
import shutil

import pytest
import torch
import yaml

from pipelines import config as config_module
from pipelines.config import SecurityConfig
from pipelines.stages import prepare_model
from tests.stage_fixtures import chdir, write_params
from transforms.io.model_io import LoadPolicy, ModelRefused, load_causal_lm

MARK = "code_ran"  # the file the shipped code creates when it runs

CUSTOM_CONFIG = '''import pathlib

from transformers import LlamaConfig

pathlib.Path({mark!r}).touch()


class CustomConfig(LlamaConfig):
    model_type = "selfsift_custom"
'''
CUSTOM_MODEL = '''from transformers import LlamaForCausalLM

from .configuration_custom import CustomConfig


class CustomForCausalLM(LlamaForCausalLM):
    config_class = CustomConfig
'''


def logits(model, tokenizer):
    with torch.no_grad():
        return model(**tokenizer(["hello there"], return_tensors="pt")).logits


@pytest.fixture
def pickle_model(tmp_path, tiny_model_dir):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    model, _ = load_causal_lm(tiny_model_dir)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def test_pickle_checkpoint_is_refused_by_default(pickle_model):
    with pytest.raises(ModelRefused, match="security.allow_pickle_checkpoints: true") as err:
        load_causal_lm(pickle_model)
    assert "pytorch_model.bin" in str(err.value)


def test_pickle_checkpoint_loads_when_explicitly_allowed(pickle_model, tiny_model_dir):
    policy = SecurityConfig(allow_pickle_checkpoints=True).load_policy()
    allowed, tokenizer = load_causal_lm(pickle_model, policy=policy)
    reference, _ = load_causal_lm(tiny_model_dir)
    assert torch.allclose(logits(allowed, tokenizer), logits(reference, tokenizer))


@pytest.fixture
def custom_code_model(tmp_path, tiny_model_dir):
    folder = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "configuration_custom.py").write_text(CUSTOM_CONFIG.format(mark=str(tmp_path / MARK)))
    (folder / "modeling_custom.py").write_text(CUSTOM_MODEL)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="selfsift_custom", auto_map={
        "AutoConfig": "configuration_custom.CustomConfig",
        "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_remote_code_is_refused_by_default(custom_code_model):
    with pytest.raises(ModelRefused, match="security.trust_remote_code: true") as err:
        load_causal_lm(custom_code_model)
    assert "AutoModelForCausalLM" in str(err.value)
    assert not (custom_code_model.parent / MARK).exists()


def test_remote_code_runs_only_when_trusted(custom_code_model):
    model, _ = load_causal_lm(custom_code_model, policy=LoadPolicy(trust_remote_code=True))
    assert type(model).__name__ == "CustomForCausalLM"  # the folder's own class: its code ran
    assert (custom_code_model.parent / MARK).exists()


class Trap:
    """Unpickling it runs code: it creates the mark."""

    def __init__(self, mark):
        self.mark = mark

    def __reduce__(self):
        return (open, (self.mark, "w"))


@pytest.fixture
def trapped_pickle_model(tmp_path, tiny_model_dir):
    folder = tmp_path / "trapped"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": Trap(str(tmp_path / MARK))}))
    return folder


@pytest.mark.parametrize("security", ["as shipped", "left out"])
@pytest.mark.parametrize("kind", ["custom_code_model", "trapped_pickle_model"])
def test_prepare_model_with_default_params_refuses_a_model_that_would_run_code(tmp_path, request, kind, security):
    """params.yaml's security settings (or, left out, the code's defaults) keep a stage from loading a
    base model that ships Python code or only a pickle, and none of that code runs."""
    source = request.getfixturevalue(kind)
    project = tmp_path / "project"
    project.mkdir()
    write_params(project, str(source))  # the repo's params.yaml, but for the base model
    if security == "left out":
        params = yaml.safe_load((project / "params.yaml").read_text())
        del params["security"]
        (project / "params.yaml").write_text(yaml.safe_dump(params))
    with chdir(project):
        with pytest.raises(ModelRefused):
            prepare_model.main(config_module.load("params.yaml"))
    assert not (project / "models" / "base").exists()
    assert not (tmp_path / MARK).exists()
