# Developer commands. Each one creates .venv and installs the project into it when needed.

PYTHON ?= python3
VENV := .venv
# pip install runs again only when pyproject.toml is newer than this file.
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
# The suite runs on every core: most tests wait on servers, so workers overlap well.
# Work stealing lets an idle worker take tests queued for a busy one, so that the
# slow isolation tests at the end of one worker's share do not leave the other idle.
PYTEST_WORKERS ?= auto
CLEAN_PATHS := $(VENV) .pytest_cache .ruff_cache .hypothesis strongroom-data src/*.egg-info

.PHONY: run test lint clean

run: $(INSTALLED)
	$(VENV)/bin/strongroom serve

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: $(INSTALLED)
	@test -x $(VENV)/bin/ruff || $(VENV)/bin/python -m pip install --quiet ruff
	$(VENV)/bin/ruff check .

clean:
	@for path in $(wildcard $(CLEAN_PATHS)) \
		$$(find . -path ./.git -prune -o -path ./$(VENV) -prune -o -name __pycache__ -type d -print); do \
		echo "removing $$path"; \
		rm -rf -- "$$path"; \
	done

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "Python 3.11 or newer is required, but $(PYTHON) is $$($(PYTHON) --version 2>&1);" \
			"run make again with PYTHON=python3.11 or a newer interpreter" >&2; \
		exit 1; }
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -e '.[test]'
	touch $@
