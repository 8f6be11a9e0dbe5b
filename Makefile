# The two commands a new user needs: `make demo` and `make test`. Each creates or reuses .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-unit bench lint format clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "xanes-stream needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)  ## run the main job end to end on embedded defaults
	$(BIN)/xanes-stream demo

test: $(STAMP)  ## run the test suite (browser tests: Debian's chromium; catalog tests: PostgreSQL, Redis)
	bash scripts/ensure-browser.sh
	bash scripts/ensure-servers.sh
	$(BIN)/python -m pytest -n 2 --dist loadfile  # two workers; each file's tests share its servers

test-unit: $(STAMP)  ## the unit tests alone (no server, no subprocess), on two cores: about a minute
	$(BIN)/python -m pytest tests/unit -n 2 -q

bench: $(STAMP)  ## benchmarks beside PyXAS and the memory-bandwidth floor
	$(BIN)/python benchmarks/bench_analyze.py

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) demo-output .pytest_cache
