# anondiff: `make run` (install into .venv and replay the seed thread), `make test` (the whole
# suite), `make golden` (regenerate golden/ — read every diff before committing), `make bench`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCENARIO ?= scenarios/seed-thread.yaml

.PHONY: run test golden bench mutation clean compiled

# The kernel model is also compiled with mypyc (the `compiled` extra) into
# ~/.cache/anondiff/mypyc/<hash of the sources>/: about 90 s of CPU, once per version of the
# sources; a source edited since is run as Python until `make compiled` (which run, test and
# bench do first: a no-op when the build matches). Without gcc: one line, and pure Python.
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,compiled]'
	$(PY) -m anondiff._build
	touch $@

compiled: $(VENV)/.installed
	$(PY) -m anondiff._build

run: $(VENV)/.installed compiled
	$(VENV)/bin/anondiff run $(SCENARIO) --format ascii --final-only

test: $(VENV)/.installed compiled
	$(PY) -m pytest -q

golden: $(VENV)/.installed
	$(PY) -m tests.golden
	git status --short golden/

bench: $(VENV)/.installed compiled
	$(PY) -m bench

# Mutation testing of the kernel model, the policies and the step semantics (not part of
# `make test`): `mutmut results` lists survivors; tests/mutation-equivalent.txt explains the
# ones no observable result can tell apart.  CI=1: hypothesis derandomized, so verdicts repeat.
# mutmut's workers (each forks one mutant's tests); the machine has 2 cores
MUTATION_CHILDREN ?= 2
mutation: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,mutation]'
	@# a resumed run re-copies the .py sources into mutants/ but not the package's other files
	@# (the kernel-tree shim, glue.c): a stale copy built a library the new binding cannot use
	if [ -d mutants/anondiff ]; then (cd anondiff && find . -type f ! -name '*.py' \
	    ! -path '*/__pycache__/*' -exec install -D -m 644 {} ../mutants/anondiff/{} \;); fi
	@# mutmut run, but a listed equivalent whose code is unchanged is not run again
	@# (MUTATION_RECHECK=1: run them all; tests/mutation_run.py says how)
	CI=1 ANONDIFF_PURE=1 $(PY) -m tests.mutation_run --max-children $(MUTATION_CHILDREN)
	$(PY) -m tests.mutation_report

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis mutants
	rm -rf $${XDG_CACHE_HOME:-$$HOME/.cache}/anondiff/mypyc
