"""Models load from safetensors, without running code shipped in the folder, unless params allow it."""

import json
import shutil

import pytest
import torch

from pipelines.config import SecurityConfig
from transforms.io.model_io import LoadPolicy, ModelRefused, load_causal_lm

CUSTOM_CONFIG = '''from transformers import LlamaConfig


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
    (folder / "configuration_custom.py").write_text(CUSTOM_CONFIG)
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


def test_remote_code_runs_only_when_trusted(custom_code_model):
    model, _ = load_causal_lm(custom_code_model, policy=LoadPolicy(trust_remote_code=True))
    assert type(model).__name__ == "CustomForCausalLM"  # the folder's own class: its code ran


def test_security_defaults_are_safe():
    assert SecurityConfig().load_policy() == LoadPolicy(trust_remote_code=False, allow_pickle=False)
