# The README's commands. Each creates or reuses the virtual environment .venv (kept out of the
# book's sources by _config.yml's exclude_patterns) and installs what it needs.
#   make book      build the executed book into _build/html (profile: cpu)
#   make test      lint, unit tests, notebook tests (nbval, profile ci), strict book build (ci)
#   make demo      train flow matching and a shortcut model on a 2D toy, write figure + table
#   make reproduce PRESET=fashion_mnist   papermill batch reproduction (GPU)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
PROFILE ?= cpu
PRESET ?= fashion_mnist
COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
export SHORTCUT_MINI_COMMIT := $(COMMIT)
# matplotlib's font cache inside the environment: a cache shared with another checkout's
# environment can list fonts that are gone, and every chapter then prints "findfont" warnings.
export MPLCONFIGDIR := $(CURDIR)/$(VENV)/matplotlib

.PHONY: setup book test lint unit notebooks book-ci demo reproduce clean chromium

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,book]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	rm -f $(VENV)/.installed-* && touch $@

chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

book: setup chromium
	$(PY) scripts/sync_notebooks.py --check
	$(PY) scripts/sync_notebooks.py --commit $(COMMIT)
	SHORTCUT_MINI_PROFILE=$(PROFILE) $(VENV)/bin/jupyter-book build -W -n --keep-going . ; \
	  rc=$$?; $(PY) scripts/sync_notebooks.py; exit $$rc
	$(PY) scripts/check_site.py

lint: setup
	$(VENV)/bin/ruff check shortcut_mini tests scripts benchmarks notebooks
	$(VENV)/bin/ruff format --check shortcut_mini tests scripts benchmarks notebooks
	$(VENV)/bin/lint-imports --no-cache --no-logo

unit: setup
	$(PY) -m pytest -q tests

notebooks: setup
	SHORTCUT_MINI_PROFILE=ci $(PY) -m pytest -q --nbval-lax notebooks/[0-9]*.ipynb

book-ci:
	$(MAKE) book PROFILE=ci

test: lint unit notebooks book-ci

demo: setup
	$(PY) -m shortcut_mini.cli demo --out runs/demo

reproduce: setup
	$(PY) -m shortcut_mini.cli reproduce $(PRESET)

clean:
	rm -rf _build runs
