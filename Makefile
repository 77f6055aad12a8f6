# anondiff: `make run` (install into .venv and replay the seed thread), `make test` (the whole
# suite), `make golden` (regenerate golden/ — read every diff before committing), `make bench`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCENARIO ?= scenarios/seed-thread.yaml

.PHONY: run test golden bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/anondiff run $(SCENARIO) --format ascii --final-only

test: $(VENV)/.installed
	$(PY) -m pytest -q

golden: $(VENV)/.installed
	$(PY) -m tests.golden
	git status --short golden/

bench: $(VENV)/.installed
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
