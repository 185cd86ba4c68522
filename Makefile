# Two commands: `make run` (set up + demo) and `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tuneforge-installed

.PHONY: run test lint format test-slow test-gpu bench-train install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=23"
	# The CPU build of torch (a file on disk on our machines); an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test,lint]"
	# google-genai 3.x, the SDK tuning scripts use today, for its conformance tests. google-cloud-aiplatform 2.7.0
	# pins google-genai<3 for modules of its own the tests do not use (its vertexai.tuning and the REST clients work
	# with 3.x), so it goes in on its own, after; pip reports the pin and installs it.
	$(BIN)/pip install --quiet "google-genai==3.3.0" 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import google.genai, sys; sys.exit(google.genai.__version__ != '3.3.0')"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/tuneforge demo

# The lint and type gate: ruff (lint and format) and mypy (strict on wire/ and control/), as pyproject.toml sets them.
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

# Two pytest workers, one test file each at a time (module-scoped servers keep their order); most integration
# tests wait on a server or the SDK's 5 s polls, so two workers fit in two cores. The lint gate runs first.
test: lint
	$(BIN)/python -m pytest -m "not slow and not gpu" -q --durations=15 -n 2 --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow" -q

# On a machine with a CUDA device (the device machine): the GPU numerics tests, then the training benchmark.
test-gpu: $(STAMP)
	$(BIN)/python -m pytest -m gpu -q tests/gpu

bench-train: $(STAMP)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/train_throughput.py --workload 1b-full --configs trl-default,trl-best,tuneforge
	$(BIN)/python bench/train_throughput.py --workload 8b-lora --configs trl-default,trl-best,tuneforge

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
