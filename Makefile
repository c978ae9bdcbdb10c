# The two commands a fresh machine needs (see README): `make demo` and `make test`.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench traces clean system-deps

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c .ci/constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/callbuddy-pbx demo

# Kannel (an HTTP SMS gateway from Debian) is a real peer in the tests.
system-deps:
	@if [ ! -x /usr/sbin/bearerbox ] || [ ! -x /usr/lib/kannel/test/fakesmsc ]; then \
		echo "installing Kannel (kannel, kannel-extras) for the gateway tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kannel kannel-extras >/dev/null; \
	fi

test: $(STAMP) system-deps
	$(BIN)/ruff check callbuddy_pbx tests bench
	$(BIN)/ruff format --check callbuddy_pbx tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q
	@if [ -f ../shared/tools/check_traces.py ]; then $(BIN)/python ../shared/tools/check_traces.py --exe $(BIN)/callbuddy-pbx; fi

bench: $(STAMP)
	$(BIN)/python bench/ami_ingest.py

clean:
	rm -rf $(VENV) data build *.egg-info
