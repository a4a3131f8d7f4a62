# AOS control plane. `make up` and `make test` are all a fresh machine needs (Python 3.11+).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

# xds-protos ships an old copy of opentelemetry/proto that, depending on install order, overwrites
# opentelemetry-proto's own; reinstalling the latter (same version) makes the result deterministic.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	$(BIN)/pip install --disable-pip-version-check -q --force-reinstall --no-deps "$$($(BIN)/pip freeze | grep '^opentelemetry-proto==')" && touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools

up: $(STAMP) ## start PostgreSQL (embedded by default), every service and Envoy; Ctrl-C stops all
	$(BIN)/aos up

proto: $(STAMP) ## regenerate stubs, descriptor set and gateway/envoy.yaml from protos/
	$(BIN)/aos gen

lint: $(STAMP) ## ruff, mypy, import contracts, buf lint, generated-code freshness
	$(BIN)/ruff format --check . && $(BIN)/ruff check .
	$(BIN)/mypy && $(BIN)/lint-imports
	$(BIN)/aos gen --check

test: lint ## lint, then every test (real PostgreSQL, gRPC servers and Envoy)
	$(BIN)/pytest -q

bench: $(STAMP) ## benchmarks (not part of test): throughput, p50, p99 and ratio to a baseline; bench/run.py -h
	$(BIN)/python bench/run.py

api-release: $(STAMP) ## record protos/ as the released API that `buf breaking` checks every change against
	$(BIN)/buf build protos -o protos/released/aos-api-v1.binpb

migrate: $(STAMP) ## create and migrate every service's database
	$(BIN)/aos migrate

k8s: $(STAMP) ## write deploy/k8s/base and render each overlay to deploy/k8s/rendered/<overlay>.yaml
	$(BIN)/python -m cli.k8s

.PHONY: help install up proto lint test migrate api-release bench
