# Two commands for a newcomer: `make demo` and `make test`. Each installs what it needs,
# uv included, so a fresh clone on a new machine needs nothing else but Python 3.11+ and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH if there is one, else the copy `make uv` installs into the user's Python.
UV = $$(command -v uv || echo python3 -m uv)

.PHONY: help uv sync demo test lint typecheck unit

help:
	@echo "make demo   train, register and serve the demo model against a local AWS emulator"
	@echo "make test   install everything, then lint, type-check and run every test"

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
	  || python3 -m pip install --quiet uv \
	  || python3 -m pip install --quiet --user uv \
	  || python3 -m pip install --quiet --user --break-system-packages uv

sync: uv
	@$(UV) sync --locked --all-groups --all-extras --quiet

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
