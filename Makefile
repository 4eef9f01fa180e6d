# Everything the tests need is installed here, idempotently, under ignored folders (.venv, .tools).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
ARGS ?=
# One version for the package, the image and the chart (scripts/sync_chart.py copies it into Chart.yaml).
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml)
# The chart's default image (helm/footprint/values.yaml image.registry/image.repository).
IMAGE ?= ghcr.io/footprint-exporter/footprint-exporter
BASE_IMAGE ?=
DIST ?= dist
HELM ?= $(shell command -v helm 2>/dev/null || echo $(TOOLS)/bin/helm)

.PHONY: run test lint venv tools bench docs clean chart image

# Running needs only the package's own dependencies; the tests add the dev extras on top.
# setup.py builds the optional C parts in place (meters/_fastread.c, accounting/_fastledger.c): rebuilt when they change.
NATIVE := setup.py exporter/footprint/meters/_fastread.c exporter/footprint/accounting/_fastledger.c

$(VENV)/.run-installed: pyproject.toml $(NATIVE)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed: pyproject.toml $(NATIVE)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@ $(VENV)/.run-installed

venv: $(VENV)/.installed

## run: the exporter on embedded defaults (no API key, no GPU, no root): http://127.0.0.1:10180/metrics
run: $(VENV)/.run-installed
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

## chart: the Helm chart as $(DIST)/footprint-$(VERSION).tgz, after checking its generated parts (make docs)
chart:
	$(BIN)/python scripts/sync_chart.py --check
	$(HELM) lint --strict helm/footprint
	$(HELM) package helm/footprint --destination $(DIST)

## image: the container image $(IMAGE):$(VERSION) (needs a docker engine); then `docker push $(IMAGE):$(VERSION)`
image:
	docker build -t $(IMAGE):$(VERSION) --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null) --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
	  $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) .

bench: venv tools
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
