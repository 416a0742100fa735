# orderstream: `make demo` and `make test` are the whole quick start.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The worker, the writer and the embedded AWS of the demo: all `make demo` needs.
STAMP     := $(VENV)/.installed
# The test and lint tools on top (pytest, hypothesis, ruff, mypy, the boto3 stubs).
DEV_STAMP := $(VENV)/.installed-dev
# Fleet mode (optional, needs java + mvn): the Java shim's runtime classpath in kcl/target/lib/
# and amazon-kclpy in the venv. Each is redone only when its inputs change.
KCL_STAMP   := kcl/target/.built
KCL_SOURCES := kcl/pom.xml $(shell find kcl/src -type f 2>/dev/null)
KCLPY_STAMP := $(VENV)/.kclpy-installed
# Quiet, colourless Maven: batch mode, no ANSI codes in logs or CI. Maven 3.8 still prints
# bare colour resets, so its (quiet) output is kept and shown only when it fails.
MVN := mvn -q -B -Dstyle.color=never
MVN_LOG := $(VENV)/mvn.log
SHOW_ON_FAILURE := > $(MVN_LOG) 2>&1 || { sed 's/\x1b\[[0-9;]*m//g' $(MVN_LOG); exit 1; }
# mkdocs for `make docs` and `make lint`. NO_MKDOCS_2_WARNING silences mkdocs-material's
# banner on each build (the project's end of life, announced for May 2027).
MKDOCS   := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs
DOCS_LOG := $(VENV)/mkdocs.log

export AWS_EC2_METADATA_DISABLED := true

.PHONY: install dev fleet fleet-build demo test lint docs lock bench clean sim settings-doc

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "make: creating $(VENV) and installing orderstream (boto3, structlog, tenacity, urllib3, orjson, prometheus-client) and moto for the demo (a minute or two, once)..."
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check -e '.[local]'
	@touch $(STAMP)

dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP)
	@echo "make: installing the test and lint tools (pytest, hypothesis, ruff, mypy, boto3-stubs, hadolint, mkdocs-material)..."
	@$(BIN)/pip install --quiet --disable-pip-version-check -e '.[local,test,dev]'
	@touch $(DEV_STAMP)

# Fleet mode (`worker kcl run`): the Java shim and amazon-kclpy. Not needed by the demo or
# the poller; skipped with a note when java or mvn is missing (its tests are skipped too).
fleet: $(STAMP)
	@if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory fleet-build; \
	else \
		echo "make: java or mvn not found: fleet mode (worker kcl run) is not installed; the poller (worker run) needs neither"; \
	fi

fleet-build: $(KCL_STAMP) $(KCLPY_STAMP)
	@:

# `clean package`: a changed pom must not leave old jars next to the new ones in target/lib.
$(KCL_STAMP): $(KCL_SOURCES)
	@echo "make: building the KCL shim and its runtime jars into kcl/target/lib (mvn)..."
	@$(MVN) -f kcl/pom.xml clean package $(SHOW_ON_FAILURE)
	@touch $(KCL_STAMP)

# amazon-kclpy (the `kcl` extra) comes from its sdist, whose build fetches jars: the script
# lets mvn resolve them first (see kcl/install-kclpy.sh).
$(KCLPY_STAMP): kcl/install-kclpy.sh | $(STAMP)
	@echo "make: installing amazon-kclpy 3.1.3 (its jars resolved by mvn first)..."
	@PIP=$(BIN)/pip MVN="$(MVN)" sh kcl/install-kclpy.sh
	@touch $(KCLPY_STAMP)

demo: install
	@$(BIN)/worker demo

# Two test processes (pytest-xdist), each with its own moto server: the end-to-end tests
# one at a time in one of them, the rest in the other (see docs/dependencies.md).
test: dev fleet
	$(BIN)/pytest -n 2 --dist loadgroup

# The deterministic simulation (tests/sim) on more seeds than `make test` runs; no Java
# needed, so only the venv and the test tools: make sim SEEDS=100000
SEEDS ?= 10000
sim: dev
	$(BIN)/python -m tests.sim --seeds $(SEEDS)

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint Dockerfile
	@echo "$(BIN)/mkdocs build --strict -d site"
	@$(MKDOCS) build --strict -d site > $(DOCS_LOG) 2>&1 || { cat $(DOCS_LOG); exit 1; }

# The documentation site (docs/, mkdocs.yml) into site/, git-ignored. --strict: a broken
# link or anchor, a page left out of the nav or a missing README snippet fails the build.
docs: dev
	$(MKDOCS) build --strict -d site

# The settings tables of docs/configuration.md and README.md, rendered from the declaration
# in worker/settings/declaration.py; tests/unit/test_settings_doc.py fails while they differ.
settings-doc: install
	$(BIN)/python -m worker.settings.doc

# requirements.lock: the image's runtime dependencies and build backend, pinned with hashes
# (the Dockerfile installs it with --require-hashes). Run after changing dependencies in
# pyproject.toml, or to take new releases; commit the result.
lock: dev
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--build-deps-for wheel --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

# The performance suite (not part of `make test`): a table, and bench/results.json.
bench: dev
	$(BIN)/python -m tests.bench.run_bench

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .mypy_cache .ruff_cache
