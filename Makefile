# One command sets up a fresh machine (make install), one runs the main job
# (make demo), one runs the tests (make test).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
WHEELS ?= ../shared/wheels

.PHONY: install demo test lint docs package bench

install:
	# The CPU build of torch first: an unpinned torch resolves to a multi-GB
	# CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,plot,docs,qm9]'
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

# The sdist and wheel a user would install (python -m build), installed into a
# clean venv that borrows this environment's torch and PyG, then an import and a
# pretrained model's prediction from outside the source tree.
package:
	rm -rf dist /tmp/torch_lie_venv
	$(PIP) install -q build
	$(PYTHON) -m build -q --sdist --wheel --outdir dist .
	$(PYTHON) -m venv --system-site-packages /tmp/torch_lie_venv
	/tmp/torch_lie_venv/bin/pip install -q --no-deps dist/torch_lie-*.whl
	cd /tmp && /tmp/torch_lie_venv/bin/python -c "import torch, torch_lie; \
		from torch_lie.pretrained import from_pretrained; \
		assert torch_lie.__file__.startswith('/tmp/torch_lie_venv'), torch_lie.__file__; \
		m = from_pretrained('springs-t2'); \
		z = m.rollout(torch.randn(2, 2, 6, 2), torch.linspace(0, 0.04, 5), torch.rand(2, 6, 2) + 0.5); \
		assert z.isfinite().all(); print('wheel', torch_lie.__version__, 'ok')"

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
