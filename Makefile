# One command sets up a fresh machine (make install), one runs the main job
# (make demo), one runs the tests (make test).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
WHEELS ?= ../shared/wheels

.PHONY: install demo test lint docs wheel bench

install:
	# The CPU build of torch first: an unpinned torch resolves to a multi-GB
	# CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,plot,docs]'
	# Optional compiled accelerators, prebuilt for CPython 3.11 + torch 2.13.0;
	# torch_lie falls back to pure torch when they are absent or do not load.
	@if [ -d $(WHEELS) ]; then $(PIP) install -q --no-deps $(WHEELS)/*.whl; fi

# A short version of the spring dynamics experiment (a few minutes on 2 CPU
# cores): 100 training systems, a small T(2) LieTransformer and the FC
# baseline, then a table of their test errors; plots in runs/demo/*/.
DEMO_DATA := --n-train 100 --train-systems 100 --n-val 100 --n-test 100 \
	--batch-size 10 --epochs 60 --lr 3e-3 --warmup 0.05 --no-progress
demo: install
	$(PYTHON) examples/spring_dynamics.py --model lie --hidden 32 --layers 2 \
		--heads 4 --kernel-dim 8 $(DEMO_DATA) --out runs/demo/lie --overwrite
	$(PYTHON) examples/spring_dynamics.py --model fc $(DEMO_DATA) \
		--out runs/demo/fc --overwrite
	$(PYTHON) examples/spring_dynamics.py --summary runs/demo/lie runs/demo/fc \
		--out runs/demo

test:
	$(PYTHON) -m pytest tests

lint:
	$(PYTHON) -m ruff check .

# The wheel a user would install, with the shipped pretrained models inside.
wheel:
	rm -rf dist
	$(PIP) wheel -q --no-deps -w dist .
	$(PYTHON) -m zipfile -l dist/torch_lie-*.whl | grep 'pretrained/springs-t2.pt' > /dev/null

# The API documentation from the docstrings, warnings (broken references
# included) as errors; open docs/_build/html/index.html.
docs:
	$(PYTHON) -m sphinx -W --keep-going -q -b html docs docs/_build/html

# The whole benchmark suite (results in runs/benchmarks/; add
# BENCH_ARGS=--update-results to rewrite benchmarks/results/); the peer
# package without its dependencies, which would replace the CPU torch.
bench:
	$(PIP) install -q --no-deps lie-transformer-pytorch einops
	$(PYTHON) -m benchmarks $(BENCH_ARGS)
