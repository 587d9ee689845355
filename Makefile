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
START ?=
END ?=
DATA ?=
FORMAT ?=
RUN_ARGS := --config $(CONFIG) $(if $(DATA),--data $(DATA)) $(if $(FORMAT),--format $(FORMAT))

.PHONY: venv run backfill test lint bench-sequences bench-quality bench-alignment serve bench-serve clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' Makefile | sed 's/:.*## /\t/'

$(VENV)/.ok: requirements.txt
	@echo "creating $(VENV) (first time only: several GB, a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv
	$(PY) -m uv pip install --python $(PY) -r requirements.txt
	touch $@

venv: $(VENV)/.ok  ## create the virtual environment

run: venv  ## run onerec_daily through Airflow (DS=day, else every sample day; DATA=dir FORMAT=loader)
	$(PY) -m dags.runner run $(RUN_ARGS) $(if $(DS),--ds $(DS))

backfill: venv  ## replay START..END (any order gives the same tables)
	$(PY) -m dags.runner backfill $(RUN_ARGS) --start $(START) --end $(END)

test: venv  ## run the whole test suite
	$(PY) -m pytest -q tests

lint: venv  ## ruff
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench-sequences: venv  ## full rebuild vs incremental, Spark vs DuckDB
	$(PY) -m bench.sequences

bench-alignment: venv  ## reward AUC per tower vs the oracle's ceiling; simulator-graded before/after GBPO, ECPO, DPO (CPU)
	$(PY) -m bench.alignment

bench-quality: venv  ## OneRec vs SASRec-CE/BCE, leave-one-out (DATA=dir FORMAT=amazon_seq|amazon_json [QUALITY_ARGS=--device cuda])
	$(PY) -m bench.quality --data $(or $(DATA),../shared/data/amazon-beauty) --format $(or $(FORMAT),amazon_seq) $(QUALITY_ARGS)

serve: venv  ## HTTP endpoint for the champion on 127.0.0.1:8000 (GET /recommend/<user>?k=10)
	$(PY) -m models.serve --config $(CONFIG)

bench-serve: venv  ## serving p50/p99 latency and requests/s on loopback (SERVE_ARGS=--synthetic without a champion)
	$(PY) -m bench.serve --config $(CONFIG) $(SERVE_ARGS)

clean:  ## remove local state (var/)
	rm -rf var
