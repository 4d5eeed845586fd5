# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two installs: the demo needs the emulator's extra only; the tests need the rest too.
DEMO_STAMP := $(VENV)/.installed-demo
STAMP := $(VENV)/.installed

.PHONY: demo test lint types contracts deploy-lint docs unit unit-quick bench bench-quick dist clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e '.[emulator]'
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/refimport demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

# Imports flow one way: shells -> application -> engine -> seams ([tool.importlinter] in pyproject).
contracts: $(STAMP)
	$(BIN)/lint-imports

# pytest-xdist: the tests mostly wait (on subprocesses starting, on the emulator's compressed
# clock, on moto), so four workers keep two cores busy. Workers take tests one at a time, longest
# first (tests/conftest.py), so the fleet test starts at once and the short tests fill in around
# it. `make unit TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 4
XDIST := -n $(TEST_WORKERS) --dist load --maxschedchunk 1

unit: $(STAMP)
	$(BIN)/pytest $(XDIST)

# The quick loop while iterating: everything but the tests marked slow.
unit-quick: $(STAMP)
	$(BIN)/pytest $(XDIST) -m "not slow"

test: lint types contracts deploy-lint docs unit

# The docs site (mkdocs.yml): --strict fails on a broken link, a page left out or an API
# reference that does not resolve. Offline; site/ is the output.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

# The deployment kit (deploy/README.md): the CloudFormation template and the worker's Dockerfile.
deploy-lint: $(STAMP)
	$(BIN)/cfn-lint --include-checks I -- deploy/*.yaml
	$(BIN)/hadolint deploy/Dockerfile

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

# The release: an sdist and a wheel in dist/, checked as an index would check them.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf $(VENV) build dist site *.egg-info .mypy_cache .pytest_cache .ruff_cache

# The deterministic simulator (simulator/README.md): SEEDS=N seeds from FROM=K, or SEED=S to replay
# one; PROFILE=full also draws the behaviours gated until the engine handles them.
.PHONY: sim
SEEDS ?= 1000
FROM ?= 0
PROFILE ?= ci
sim: $(STAMP)
	$(BIN)/python -m simulator --profile $(PROFILE) $(if $(SEED),--seed $(SEED),--seeds $(SEEDS) --from $(FROM))
