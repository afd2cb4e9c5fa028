# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Each creates .venv (re-installing when pyproject.toml changes) before it does its job.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NEXT_DIR   := server-examples/nextjs
NEXT_STAMP := $(NEXT_DIR)/node_modules/.installed

.PHONY: run test lint check clean bench package

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Install and open the app (on the built-in local sandbox when no server is configured).
run: $(STAMP)
	@scripts/ensure-desktop-libs
	$(BIN)/desktop-uploader

## Install and run the whole test suite: lint, types, architecture, and every test.
test: $(STAMP) $(NEXT_STAMP) lint
	$(BIN)/python -m pytest

# The Next.js route (server-examples/nextjs) that tests/nextjs builds and runs: its pinned packages.
$(NEXT_STAMP): $(NEXT_DIR)/package-lock.json
	cd $(NEXT_DIR) && npm ci --no-audit --no-fund
	touch $(NEXT_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check desktop_uploader tests benchmarks scripts packaging
	$(BIN)/ruff format --check desktop_uploader tests benchmarks packaging
	$(BIN)/mypy
	$(BIN)/lint-imports

## Benchmarks (not part of the tests): our CLI against boto3, the AWS CLI, rclone and curl, on loopback
## and on an emulated WAN; about an hour, needs root for the WAN's network namespaces. docs/benchmarks.md
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

## Build the installable app here: the PyInstaller bundle and, on Linux, the .deb (into dist/).
package: $(STAMP)
	$(BIN)/python packaging/build.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache $(NEXT_DIR)/node_modules $(NEXT_DIR)/.next
