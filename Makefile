# Two commands on a fresh machine:  `make run` (platform + demo province on SQLite)  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test test-fast demo bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,spark]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/phip demo --if-empty
	$(BIN)/phip serve --host $(HOST) --port $(PORT)

test: $(BIN)/.installed
	scripts/ensure-chromium
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# the suite without the tests that run PHIP in processes of its own, kill them or drive Chromium
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not slow"

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/ingest_pipeline.py

clean:
	rm -rf $(VENV) data .pytest_cache
