# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# telemetry off for every tool a target starts (the code sets these too)
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export BENTOML_DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1

.PHONY: setup demo test lint format bench clean

setup: $(STAMP)

$(STAMP): requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=25"
	$(BIN)/pip install --quiet -r requirements.lock
	touch $(STAMP)

demo: $(STAMP)  ## generate demo data, build features, train, register, score, report
	$(BIN)/python -m retain demo

test: $(STAMP)  ## the whole test suite, slow end-to-end tests included
	$(BIN)/python -m pytest -n 2 --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf outputs mlruns mlflow.db .bentoml
