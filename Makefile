# The README's commands. `make run` trains and evaluates everything offline; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup run run-real sweep test test-fast metrics ui server bench push pull clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -c requirements.lock -e ".[test]"
	touch $(STAMP)

run: setup
	@$(BIN)/python -m visionflow.experiment --check
	$(BIN)/dvc repro
	@$(BIN)/python -m visionflow.summary

# The real datasets: SOURCE=directory (PETS_DIR, FLOWERS_DIR: local copies in the release layout) or
# SOURCE=tfds (downloaded by tensorflow-datasets), with the settings of configs/real.yaml, as a DVC experiment
# named EXP. EXTRA takes more `dvc exp run` arguments, e.g. EXTRA='-S segmentation.epochs=2' or EXTRA=--queue.
# visionflow.experiment checks every setting, folder and weight file before DVC starts a stage.
SOURCE ?= directory
PETS_DIR ?=
FLOWERS_DIR ?=
EXP ?= real-$(SOURCE)
EXTRA ?=
DATA_SETTINGS = -S data.source=$(SOURCE) \
	$(if $(PETS_DIR),-S 'data.pets_dir=$(abspath $(PETS_DIR))') \
	$(if $(FLOWERS_DIR),-S 'data.flowers_dir=$(abspath $(FLOWERS_DIR))')

run-real: setup
	@$(BIN)/python -m visionflow.experiment configs/real.yaml -n $(EXP) $(DATA_SETTINGS) $(EXTRA)
	@$(BIN)/dvc exp show --only-changed --md | head -20
	@$(BIN)/python -m visionflow.summary

# Cross-validated sweep: every GRID point (-S key=a,b makes an axis) times FOLDS folds, queued as DVC experiments
# named SWEEP-<point>-f<fold> on top of SETTINGS and the data variables above, run one at a time, and summarised as
# mean +- std over the folds (reports/sweep-SWEEP.csv). TARGETS (e.g. evaluate_segmentation) runs only those stages.
# SEEDS=42,7,1234 repeats the folds once per seed (each draws other folds) and pools them: repeated k-fold.
SETTINGS ?= configs/real.yaml
FOLDS ?= 5
SEEDS ?=
GRID ?=
SWEEP ?= sweep
TARGETS ?=
sweep: setup
	@$(BIN)/python -m visionflow.sweep $(SETTINGS) -n $(SWEEP) --folds $(FOLDS) $(if $(SEEDS),--seeds $(SEEDS)) \
		$(DATA_SETTINGS) $(GRID) $(TARGETS)

# The tests run on TEST_WORKERS processes (pytest-xdist), each test file on one of them, the longest first
# (tests/conftest.py; --no-loadscope-reorder keeps that order).
TEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(TEST_WORKERS) --no-loadscope-reorder
test: setup
	$(BIN)/python -m pytest -ra $(PYTEST_PARALLEL)

test-fast: setup
	$(BIN)/python -m pytest -ra -m "not slow" $(PYTEST_PARALLEL)

metrics: setup
	$(BIN)/dvc metrics show

# The MLflow UI on the project's store, on this machine only, without telemetry; prints the runs table's address.
UI_PORT ?= 5000
ui: setup
	@MLFLOW_DISABLE_TELEMETRY=true MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/mlflow.db $(BIN)/python -c "from visionflow.tracking import runs_table_url; \
	  print('MLflow runs table:', runs_table_url('http://127.0.0.1:$(UI_PORT)'))"
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/mlflow ui --host 127.0.0.1 --port $(UI_PORT) \
	  --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

# A shared MLflow server on PostgreSQL with artifacts on S3 (settings: README, Working as a team).
server: setup
	@$(BIN)/python -m visionflow.server

# Share data, caches, models and the run-cache through the default DVC remote (README: Working as a team).
push: setup
	@$(BIN)/python -m visionflow.remote check
	$(BIN)/dvc push --run-cache
	@$(BIN)/python -m visionflow.remote push-runs

pull: setup
	@$(BIN)/python -m visionflow.remote check
	$(BIN)/dvc pull --run-cache
	@$(BIN)/python -m visionflow.remote fetch-runs

# The benchmark suite: bench/results.json and the README's table. BENCH_ARGS=--quick for a smoke run; more options:
# `python -m bench --help` (e.g. BENCH_ARGS='--only cache,dvc').
BENCH_ARGS ?=
bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
