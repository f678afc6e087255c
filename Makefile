# Two commands do all set-up on a fresh machine (Python >= 3.11 with venv):
#   make demo   install into .venv, run the main job on the bundled demo corpus
#   make test   install into .venv, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test install bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	bash scripts/system-deps.sh
	$(BIN)/python -m pip install --quiet -e ".[test,text,faces,web]"

demo: install
	$(BIN)/picsift demo --out demo-output

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/scan.py

clean:
	rm -rf demo-output bench-output .pytest_cache
