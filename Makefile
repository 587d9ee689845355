# Two commands do all the set-up: `make run` (demo, end to end) and `make test`.
# The venv lives outside the clone, keyed by the hash of requirements.txt, so
# clones and CI on the same machine reuse it.
SHELL := /bin/bash
PYTHON ?= python3
REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-12)
VENV ?= $(HOME)/.cache/onerec/venv-$(REQ_HASH)
PY := $(VENV)/bin/python
export ONEREC_HOME ?= $(CURDIR)/var
export PYTHONPATH := $(CURDIR)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Some shells set this; it makes every Airflow import recompile from source.
unexport PYTHONDONTWRITEBYTECODE
CONFIG ?= local
DS ?=
# make run replays the first DAYS days of the data (0 = all), then the weekly codebook DAG once.
DAYS ?= 7
START ?=
END ?=
BULK ?=
# make test's worker processes (pytest-xdist); each runs its own local[1] Spark session.
TEST_WORKERS ?= 2
DATA ?=
FORMAT ?=
RUN_ARGS := --config $(CONFIG) $(if $(DATA),--data $(DATA)) $(if $(FORMAT),--format $(FORMAT))

.PHONY: venv run backfill test cluster-test lint bench-sequences bench-quality bench-alignment serve mlflow-ui bench-serve clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' Makefile | sed 's/:.*## /\t/'

$(VENV)/.ok: requirements.txt
	@echo "creating $(VENV) (first time only: several GB, a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv
	$(PY) -m uv pip install --python $(PY) -r requirements.txt
	touch $@

venv: $(VENV)/.ok  ## create the virtual environment

run: venv  ## the first DAYS=7 days (0: all; fresh lake: one bulk pass, then onerec_daily on the last; BULK=0: a DAG run per day) + the weekly DAG, then a summary (DS=day; DATA=dir FORMAT=loader; V=1: logs on the console)
	$(PY) -m dags.runner run $(RUN_ARGS) $(if $(DS),--ds $(DS),--days $(DAYS) --weekly $(if $(filter 0,$(BULK)),,--bulk)) $(if $(V),-v)

backfill: venv  ## replay START..END day by day (any order gives the same tables); BULK=1: empty lake, one pass per stage
	$(PY) -m dags.runner backfill $(RUN_ARGS) --start $(START) --end $(END) $(if $(BULK),--bulk) $(if $(V),-v)

test: venv  ## run the whole test suite (TEST_WORKERS=2 processes; tests sharing a costly fixture stay in one)
	$(PY) -m pytest -q -n $(TEST_WORKERS) tests

cluster-test: venv  ## only tests/cluster (in make test too): a day on a loopback Spark cluster + S3 lake + Celery == the local day
	$(PY) -m pytest -q tests/cluster

lint: venv  ## ruff
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench-sequences: venv  ## full rebuild vs incremental, Spark vs DuckDB
	$(PY) -m bench.sequences

bench-alignment: venv  ## reward AUC per tower vs the oracle's ceiling; simulator-graded before/after GBPO, ECPO, DPO (CPU)
	$(PY) -m bench.alignment

bench-quality: venv  ## OneRec vs SASRec-CE/BCE, leave-one-out (DATA=dir FORMAT=amazon_seq|amazon_json [QUALITY_ARGS=--device cuda])
	$(PY) -m bench.quality --data $(or $(DATA),$(error bench-quality needs DATA=<dataset folder>)) --format $(or $(FORMAT),amazon_seq) $(QUALITY_ARGS)

serve: venv  ## HTTP endpoint for the champion on 127.0.0.1:8000 (GET /recommend/<user>?k=10)
	$(PY) -m serving.serve --config $(CONFIG)

mlflow-ui: venv  ## MLflow UI (runs, metric curves, model versions, champion alias) on 127.0.0.1:5000
	$(PY) -m jobs.mlflow_ui --config $(CONFIG)

bench-serve: venv  ## serving p50/p99 latency and requests/s on loopback (SERVE_ARGS=--synthetic without a champion)
	$(PY) -m bench.serve --config $(CONFIG) $(SERVE_ARGS)

clean:  ## remove local state (var/)
	rm -rf var
