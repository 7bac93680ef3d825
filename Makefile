# tbqkd — two commands on a fresh machine: `make demo` and `make test`.
# Each creates (or reuses) .venv and installs everything from PyPI on first use.

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
JOBS    ?= 2

.PHONY: all venv demo test test-fast test-slow test-hdl test-cocotb lint verilog bench bitstream bitstream-check clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[hdl,dev]'
	touch $(STAMP)

venv: $(STAMP)

## The main job: an emulated link on the built-in Verilator model and the twin.
# The main job: the link on the Verilator model of the core, fed by the twin (80 km: bright
# enough that a few seconds of link time give secret key; 120 km needs hours, see README).
DEMO_ARGS ?= --distance-km 80 --duration 6 --block-bits 100000 --min-block-bits 50000 --out runs/demo
demo: $(STAMP)
	rm -rf runs/demo
	$(VENV)/bin/tbqkd run $(DEMO_ARGS)

## The whole test suite (soak runs excluded; see test-slow).
test: $(STAMP)
	$(PY) -m pytest -n $(JOBS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

test-hdl: $(STAMP)
	$(PY) -m pytest tests/hdl

test-cocotb: $(STAMP)
	$(PY) -m pytest tests/cocotb

lint: $(STAMP)
	$(VENV)/bin/ruff check .

## Generated Verilog and the register map (JSON, Markdown) under build/.
verilog: $(STAMP)
	$(PY) -m tbqkd.hdl.build

bench: $(STAMP)
	@for b in tdc synth core twin ec pa link; do $(VENV)/bin/tbqkd bench $$b --json; done

## FPGA bitstream of one core for one board (needs Vivado on PATH; docs/DEPLOY.md).
BOARD ?= pynq-z2
ROLE  ?= bob
bitstream: $(STAMP)
	$(PY) -m tbqkd.deploy bitstream --board $(BOARD) --role $(ROLE)

## Dry run of the build TCL against the generated Verilog, the tables and the XDC (no Vivado).
bitstream-check: $(STAMP)
	$(PY) -m tbqkd.deploy check --board $(BOARD) --role $(ROLE)

clean:
	rm -rf build .pytest_cache
