# Tessera: `make run` starts the core on the embedded default, `make test` runs every check.
# Both create the virtual environment and install Tessera (editable, setuptools strict mode) first.

PYTHON ?= python3
# Every dependency comes from the lock files, pinned with hashes (`make lock` writes them with uv):
# requirements-dev.lock   everything `make run` and `make test` use (runtime, test and dev extras)
# requirements.lock       the runtime only, at the same versions (the Dockerfile installs it)
# requirements-build.lock the build backend of pyproject.toml's [build-system] (the Dockerfile)
# `make test-latest` (LATEST=1) ignores them: a separate venv gets the newest versions the ranges
# in pyproject.toml allow, so that drift shows before it reaches a user.
ifeq ($(LATEST),1)
VENV := .venv-latest
# tests/test_lock.py then lists the drift from the lock instead of failing on it.
export TESSERA_TEST_DEPS := latest
DEPS := pyproject.toml
INSTALL_DEPS := --upgrade --upgrade-strategy eager -e '.[test,dev]' --config-settings editable_mode=strict
else
VENV ?= .venv
DEPS := requirements-dev.lock
INSTALL_DEPS := --require-hashes -r requirements-dev.lock
endif
BIN := $(VENV)/bin
# A folder named `operator` must never shadow the standard library: keep the cwd off sys.path.
export PYTHONSAFEPATH := 1
# operator/ and outposts/ exist in git only once they hold code.
CODE_DIRS := $(wildcard core operator outposts)
LINT_PATHS := $(CODE_DIRS) $(wildcard tests bench) setup.py
SOURCES := $(shell find $(CODE_DIRS) -name '*.py' -o -name '*.mako' -o -name 'py.typed' -o -name '*.html' -o -name '*.css' -o -name '*.js')

.PHONY: run test test-latest lock lock-upgrade lint typecheck imports pytest install clean \
	system-deps crds

# A new lock gets a new venv, so nothing that left the lock stays installed.
$(BIN)/.base-installed: $(DEPS) setup.py
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(INSTALL_DEPS)
	touch $@

# Strict editable installs link each file: re-link when a source file appears or changes, or
# when pyproject.toml changes (entry points, package data).
$(BIN)/.installed: $(BIN)/.base-installed pyproject.toml $(SOURCES)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=strict
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/tessera server

test: install system-deps lint typecheck imports pytest

# Not part of `make test` or CI: the suite on the newest versions pyproject.toml allows.
test-latest:
	rm -rf .venv-latest
	$(MAKE) test LATEST=1

# Rewrites the lock files from pyproject.toml, keeping every pin that still fits (uv resolves for
# every platform and Python >= 3.11, and records the hashes of all files of each pinned version).
# `make lock-upgrade` moves every pin to the newest allowed version.
UV_COMPILE = UV_CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/uv pip compile --quiet --universal \
	--python-version 3.11 --generate-hashes
BUILD_REQUIRES = $(BIN)/python -c "import tomllib; \
	print(*tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires'], sep='\n')"
lock: install
	$(UV_COMPILE) $(UV_ARGS) pyproject.toml --extra test --extra dev -o requirements-dev.lock
	$(UV_COMPILE) pyproject.toml -c requirements-dev.lock -o requirements.lock
	$(BUILD_REQUIRES) | $(UV_COMPILE) - -c requirements-dev.lock -o requirements-build.lock

lock-upgrade:
	$(MAKE) lock UV_ARGS=--upgrade

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
	rm -rf $(VENV) .venv-latest build *.egg-info .mypy_cache .ruff_cache
