# orderstream: `make demo` and `make test` are the whole quick start.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Fleet mode (optional, needs java + mvn): the Java shim's runtime classpath in kcl/target/lib/
# and amazon-kclpy in the venv. Each is redone only when its inputs change.
KCL_STAMP   := kcl/target/.built
KCL_SOURCES := kcl/pom.xml $(shell find kcl/src -type f 2>/dev/null)
KCLPY_STAMP := $(VENV)/.kclpy-installed

export AWS_EC2_METADATA_DISABLED := true

.PHONY: install install-kcl demo test lint lock bench clean sim

install: $(STAMP)
	@if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory install-kcl; \
	else \
		echo "note: java or mvn not found: fleet mode (worker kcl run) is not installed; the poller (worker run) needs neither"; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,test,dev]'
	touch $(STAMP)

install-kcl: $(KCL_STAMP) $(KCLPY_STAMP)
	@:

# `clean package`: a changed pom must not leave old jars next to the new ones in target/lib.
$(KCL_STAMP): $(KCL_SOURCES)
	mvn -q -B -f kcl/pom.xml clean package
	touch $(KCL_STAMP)

# amazon-kclpy (the `kcl` extra) comes from its sdist, whose build fetches jars: the script
# lets mvn resolve them first (see kcl/install-kclpy.sh).
$(KCLPY_STAMP): kcl/install-kclpy.sh | $(STAMP)
	PIP=$(BIN)/pip sh kcl/install-kclpy.sh
	touch $(KCLPY_STAMP)

demo: install
	$(BIN)/worker demo

test: install
	$(BIN)/pytest

# The deterministic simulation (tests/sim) on more seeds than `make test` runs; no Java
# needed, so only the venv: make sim SEEDS=100000
SEEDS ?= 10000
sim: $(STAMP)
	$(BIN)/python -m tests.sim --seeds $(SEEDS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

# requirements.lock: the image's runtime dependencies and build backend, pinned with hashes
# (the Dockerfile installs it with --require-hashes). Run after changing dependencies in
# pyproject.toml, or to take new releases; commit the result.
lock: install
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--build-deps-for wheel --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

# The performance suite (not part of `make test`): a table, and bench/results.json.
bench: install
	$(BIN)/python -m tests.bench.run_bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
