# Every target builds .venv first, so a fresh clone needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint bench format typecheck clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

serve: $(STAMP)
	$(BIN)/broxi-mock serve $(ARGS)

# Static checks come first: they take seconds and name the file and line of a problem.
test: $(STAMP)
	$(BIN)/broxi-mock lint
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/broxi-mock lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The benchmark takes about three minutes and records its run in docs/benchmarks.md. It uses
# wrk when installed (Debian or Ubuntu: apt-get install wrk), else a slower Python generator.
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
