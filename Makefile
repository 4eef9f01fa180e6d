# Everything the tests need is installed here, idempotently, under ignored folders (.venv, .tools).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
ARGS ?=

.PHONY: run test lint venv tools bench docs clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

## run: the exporter on embedded defaults (no API key, no GPU, no root): http://127.0.0.1:10180/metrics
run: venv
	$(BIN)/footprint-exporter $(ARGS)

## tools: promtool, Prometheus, Alertmanager, helm and friends for the tests (see scripts/install-test-tools.sh)
tools:
	bash scripts/install-test-tools.sh $(TOOLS)

## test: lint, then every test
test: lint tools
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

## docs: regenerate every generated file (rules, dashboards, the chart's copies, docs); tests fail on drift
docs: venv
	$(BIN)/python scripts/gen_rules.py
	$(BIN)/python scripts/gen_dashboards.py
	$(BIN)/python scripts/sync_chart.py
	$(BIN)/python scripts/gen_docs.py

bench: venv tools
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
