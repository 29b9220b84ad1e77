# Tessera: `make run` starts the core on the embedded default, `make test` runs every check.
# Both create the virtual environment and install Tessera (editable, setuptools strict mode) first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A folder named `operator` must never shadow the standard library: keep the cwd off sys.path.
export PYTHONSAFEPATH := 1
SOURCES := $(shell find core operator outposts -name '*.py' -o -name '*.mako' 2>/dev/null)

.PHONY: run test lint typecheck imports pytest install clean crds

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

test: install lint typecheck imports pytest

lint: install
	$(BIN)/ruff check core operator outposts tests bench setup.py
	$(BIN)/ruff format --check core operator outposts tests bench setup.py

typecheck: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

pytest: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
