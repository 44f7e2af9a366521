# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv (if missing) and installs the project, with its test and lint tools, into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv pure samples bench clean screenshots system-tools

# The per-packet modules are compiled with mypyc (see setup.py): rebuild when any of them changes.
# Their list is kept once, in tcpflow_audit/build.py.
COMPILED_SOURCES := $(shell $(PYTHON) tcpflow_audit/build.py)

$(STAMP): pyproject.toml setup.py $(COMPILED_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# an earlier build's extensions would shadow the new source if this one falls back to pure Python
	find tcpflow_audit -name '*.so' -delete
	rm -f *__mypyc*.so
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -c "import tcpflow_audit; print('tcpflow-audit build:', tcpflow_audit.BUILD)"
	@# setup.py falls back to pure Python when mypyc fails (right for a user's pip install), which here
	@# would hide a type error mypyc cannot compile behind a 7x slower build: with a C compiler, fail
	@if [ -z "$$TCPFLOW_AUDIT_PURE" ] && command -v "$${CC:-cc}" >/dev/null && \
	    ! $(BIN)/python -c "import sys, tcpflow_audit; sys.exit(tcpflow_audit.BUILD.startswith('pure'))"; then \
	  echo "mypyc did not compile the package (see: $(BIN)/pip install -v -e .); TCPFLOW_AUDIT_PURE=1 builds pure Python" >&2; \
	  exit 1; fi
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/tcpflow-audit sample_pcaps/demo.pcap

# Tools some tests drive, as command:Debian package. As root on Debian or Ubuntu the missing ones are
# installed here; elsewhere those tests skip and say why. strace: tests/test_output_sets.py stops runs at
# each step; chromium: tests/test_html_report.py draws the HTML report; ip, ss, tcpdump, nft, tshark:
# tests/test_sockets.py makes new kernel captures in network namespaces and checks them against ss.
TEST_TOOLS := strace:strace chromium:chromium ip:iproute2 ss:iproute2 tcpdump:tcpdump nft:nftables tshark:tshark

system-tools:
	@missing=$$(for t in $(TEST_TOOLS); do command -v $${t%%:*} >/dev/null || echo $${t#*:}; done | sort -u); \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing for the tests:" $$missing; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get install -y -q $$missing || { apt-get update -q && apt-get install -y -q $$missing; }; } >/dev/null || true; \
	fi

test: $(STAMP) system-tools
	$(BIN)/python -m pytest -q

# the HTML report of sample captures, drawn in headless Chromium, as the documentation shows them
screenshots: $(STAMP)
	$(BIN)/python tests/browser.py docs/images

# ruff (lint and format) over the package, tests, bench and scripts; mypy over the package
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

samples: $(STAMP)
	$(BIN)/python sample_pcaps/make_samples.py
	$(BIN)/python sample_pcaps/make_crafted.py
	$(BIN)/python sample_pcaps/make_vxlan.py
	$(BIN)/python sample_pcaps/make_tunnels.py
	$(BIN)/python sample_pcaps/make_fragments.py

bench: $(STAMP)
	bash bench/run_bench.sh

# Switch the venv to the pure Python build (no mypyc), e.g. to run `.venv/bin/python -m pytest -q`
# on it; the next `make venv` or `make test` compiles again.
pure: $(STAMP)
	rm -f tcpflow_audit/*.so tcpflow_audit/detectors/*.so tcpflow_audit/detectors/kinds/*.so *__mypyc*.so $(STAMP)
	TCPFLOW_AUDIT_PURE=1 $(BIN)/pip install -q -e '.[test]'
	$(BIN)/python -c "import tcpflow_audit; print('tcpflow-audit build:', tcpflow_audit.BUILD)"

clean:
	rm -rf $(VENV) build *.egg-info tcpflow_audit/*.so tcpflow_audit/detectors/*.so tcpflow_audit/detectors/kinds/*.so *__mypyc*.so
