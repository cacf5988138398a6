import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from transforms.io.model_io import load_causal_lm

    return load_causal_lm(tiny_model_dir)


@pytest.fixture(scope="session")
def varied_model_dir(tmp_path_factory):
    """A tiny model whose greedy text varies from token to token (the default one repeats one token)."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("varied-model") / "model", initializer_range=0.2)


@pytest.fixture(scope="session")
def varied_model(varied_model_dir):
    from transforms.io.model_io import load_causal_lm

    return load_causal_lm(varied_model_dir)
