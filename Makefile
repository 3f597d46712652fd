# Two commands do everything on a fresh machine:
#   make run   - create .venv, install the pinned stack, run the weekly pipeline on the bundled data
#   make test  - same set-up, then the whole test suite
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.in constraints.txt pyproject.toml | sha1sum | cut -c1-12)
# pip on some machines prints one "Location ... is ignored" line per package for absent local indexes
PIP_QUIET := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: setup run test test-fast lint lock clean
setup: $(STAMP)

$(STAMP): requirements.in constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the pinned stack into $(VENV) (about 2 minutes the first time)..."
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.in -c constraints.txt 2>&1 | $(PIP_QUIET)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e . 2>&1 | $(PIP_QUIET)
	@rm -f $(VENV)/.installed-*
	@touch $@

# the bundled demo data unless ARGS names the inputs (`make run ARGS="--orders ..."`)
run: setup
	$(BIN)/clv run $(if $(filter --orders% --sources% --settings%,$(ARGS)),,--demo) $(ARGS)

# Two workers (pytest-xdist), each taking whole test modules (their module-scoped scenarios run once);
# the slowest tests are listed at the end.
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15 $(PYTEST_ARGS)

# ruff and sqlfluff through pre-commit's hooks (.pre-commit-config.yaml), on every file.
lint: setup
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

# The daily loop: unit tests and small warehouse checks on two workers (under 90 s); `make test` before pushing.
test-fast: setup
	$(BIN)/python -m pytest -m fast -n 2 --dist loadfile $(PYTEST_ARGS)

# Re-resolve the lock after changing requirements.in (needs the package registry).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -r requirements.in 2>&1 | $(PIP_QUIET)
	.venv-lock/bin/pip freeze --exclude-editable > constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) data/warehouse data/mlflow data/dbt
