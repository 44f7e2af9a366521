# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv (if missing) and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv samples bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/tcpflow-audit sample_pcaps/demo.pcap

test: $(STAMP)
	$(BIN)/python -m pytest -q

samples: $(STAMP)
	$(BIN)/python sample_pcaps/make_samples.py
	$(BIN)/python sample_pcaps/make_crafted.py

bench: $(STAMP)
	bash bench/run_bench.sh

clean:
	rm -rf $(VENV) build *.egg-info
