# The two commands of the quick start: `make demo` and `make test`.
# Both create .venv on first use; quickfix is compiled from source by pip the first
# time (about five minutes), then pip's wheel cache makes it fast.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install lint typecheck bench soak clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel setuptools
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cmc demo

test: $(STAMP)
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is missing or the selection is wrong" >&2; fi; \
	exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check oms sessions tests bench
	$(BIN)/ruff format --check oms sessions tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/matching.py

# The demo market under random faults for SOAK_SECONDS; with CMC_TEST_PG_URL set, receipts
# go to that PostgreSQL and the database is cut mid-run and restored.
SOAK_SECONDS ?= 60
SOAK_ARGS ?= $(if $(CMC_TEST_PG_URL),--database-outage)
soak: $(STAMP)
	$(BIN)/cmc soak --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
