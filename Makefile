# The two commands a fresh machine needs (see README): `make demo` and `make test`.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench traces clean system-deps mutate

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c .ci/constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/callbuddy-pbx demo

# Real peers of the tests, from Debian: Kannel (an HTTP SMS gateway), Chromium (the dashboard's browser tests,
# driven by Playwright without a browser download) and PostgreSQL (the store tests run on it as well as on SQLite;
# tests/pg.py starts a throwaway cluster, so the package's own service is not needed).
system-deps:
	@missing=""; \
	if [ ! -x /usr/sbin/bearerbox ] || [ ! -x /usr/lib/kannel/test/fakesmsc ]; then missing="kannel kannel-extras"; fi; \
	if [ ! -x /usr/bin/chromium ]; then missing="$$missing chromium"; fi; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing="$$missing postgresql"; fi; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: $(STAMP) system-deps
	$(BIN)/ruff check callbuddy_pbx tests bench tools
	$(BIN)/ruff format --check callbuddy_pbx tests bench tools
	$(BIN)/mypy
	$(BIN)/pytest -q
	@if [ -f ../shared/tools/check_traces.py ]; then $(BIN)/python ../shared/tools/check_traces.py --exe $(BIN)/callbuddy-pbx; fi

# Mutation testing of the pure core (on demand, not in CI; a few minutes): one line per module, survivors by name
# with `$(BIN)/python tools/mutation_report.py --survivors`, and `$(BIN)/mutmut show NAME` for the change.
mutate: $(STAMP)
	$(BIN)/pip install --quiet -c .ci/constraints.txt -e '.[mutate]'
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 >mutmut-run.log 2>&1 || (tail -20 mutmut-run.log; false)
	$(BIN)/python tools/mutation_report.py

bench: $(STAMP)
	$(BIN)/python bench/ami_ingest.py

clean:
	rm -rf $(VENV) data build *.egg-info mutants mutmut-run.log
