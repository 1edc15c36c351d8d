# certplane: `make run` serves the demo, `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test conformance bench clean

$(BIN)/certplane: pyproject.toml
	$(PYTHON) scripts/check_python.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[demo]'
	touch $@

run: $(BIN)/certplane
	$(BIN)/certplane --config demo/certplane.toml demo

test:
	bash scripts/install-test-deps.sh $(PYTHON) $(VENV)
	bash scripts/require-postgres.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	bash scripts/source-tree.sh
	$(BIN)/mypy
	PYTHONPATH=build/source-tree $(BIN)/lint-imports
	$(BIN)/pytest -q conformance --target pebble
	$(BIN)/pytest -q conformance --target certplane
	$(BIN)/pytest -q -p no:randomly

conformance:
	mkdir -p build
	$(BIN)/pytest -q conformance --target certplane --report build/conformance-certplane.json
	$(BIN)/pytest -q conformance --target pebble --report build/conformance-pebble.json
	$(BIN)/python conformance/report.py build/conformance-certplane.json \
		build/conformance-pebble.json docs/conformance.md

bench: $(BIN)/certplane
	$(BIN)/python bench/issuance.py

clean:
	rm -rf $(VENV) .certplane-demo build *.egg-info
