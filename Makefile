# The README's commands. `make run` trains and evaluates everything offline; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup run test test-fast metrics ui bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -c requirements.lock -e ".[test]"
	touch $(STAMP)

run: setup
	$(BIN)/dvc repro
	@$(BIN)/python -m visionflow.summary

test: setup
	$(BIN)/python -m pytest -ra

test-fast: setup
	$(BIN)/python -m pytest -ra -m "not slow"

metrics: setup
	$(BIN)/dvc metrics show

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

bench: setup
	$(BIN)/python bench/detection.py

clean:
	rm -rf $(VENV) .pytest_cache
