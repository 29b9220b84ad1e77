# Tessera: `make run` starts the core on the embedded default, `make test` runs every check.
# Both create the virtual environment and install Tessera (editable, setuptools strict mode) first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A folder named `operator` must never shadow the standard library: keep the cwd off sys.path.
export PYTHONSAFEPATH := 1
# operator/ and outposts/ exist in git only once they hold code.
CODE_DIRS := $(wildcard core operator outposts)
LINT_PATHS := $(CODE_DIRS) $(wildcard tests bench) setup.py
SOURCES := $(shell find $(CODE_DIRS) -name '*.py' -o -name '*.mako' -o -name 'py.typed' -o -name '*.html' -o -name '*.css' -o -name '*.js')

.PHONY: run test lint typecheck imports pytest install clean system-deps crds

$(BIN)/.base-installed: pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=strict
	touch $@ $(BIN)/.installed

# Strict editable installs link each file: re-link when a source file appears or changes.
$(BIN)/.installed: $(BIN)/.base-installed $(SOURCES)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=strict
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/tessera server

test: install system-deps lint typecheck imports pytest

# Debian packages the tests use as real components (Chromium); installed when missing.
system-deps:
	.ci/system-deps

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

# The CustomResourceDefinitions, generated from the operator's resource models; the chart carries a
# copy in its crds/ folder (Helm installs those first). tests/operator checks both are up to date.
crds: install
	$(BIN)/python -m tessera.operator.crds crds helm/tessera/crds

# The suite runs in PYTEST_WORKERS pytest-xdist worker processes, a test file at a time per worker
# (the module fixtures start servers, operators and browsers once per file). Much of the time is
# spent waiting on child processes, so three workers pay off even on two cores.
# `make pytest PYTEST_ARGS="-n 0"` runs everything in one process, e.g. for a debugger.
PYTEST_WORKERS ?= 3
pytest: install
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
