# Set-up on a fresh machine is part of every target: a .venv is created if absent.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench venv clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python

demo: venv
	$(BIN)/pip install -q -e '.[examples]'
	$(BIN)/python -m chainrule train digits-cnn

test: venv
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/transforms.py
	$(BIN)/python benchmarks/compile.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
