# One command sets up a fresh machine (make install), one runs the main job
# (make demo), one runs the tests (make test).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
WHEELS ?= ../shared/wheels

.PHONY: install demo test lint bench

install:
	# The CPU build of torch first: an unpinned torch resolves to a multi-GB
	# CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,plot]'
	# Optional compiled accelerators, prebuilt for CPython 3.11 + torch 2.13.0;
	# torch_lie falls back to pure torch when they are absent or do not load.
	-[ -d $(WHEELS) ] && $(PIP) install -q --no-deps $(WHEELS)/*.whl

demo: install
	$(PYTHON) examples/molecules.py

test:
	$(PYTHON) -m pytest test

lint:
	$(PYTHON) -m ruff check .

bench:
	$(PYTHON) benchmarks/radius_graph.py
