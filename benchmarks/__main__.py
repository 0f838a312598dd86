r"""Runs the whole benchmark suite, each benchmark in a fresh process, and
lists the results files. Options (``--quick``, ``--device``, ``--repeats``,
``--threads``, ``--out``, ``--update-results``) are passed to every
benchmark; ``--only`` picks some of them. Results go to ``runs/benchmarks/``
unless ``--update-results`` writes them to the committed
``benchmarks/results/``.

    python -m benchmarks [--quick] [--device cuda] [--only layer models]
"""
import argparse
import subprocess
import sys
import time

#: In order of run time. The data-efficiency study (hours of training) is
#: not part of the suite: ``python benchmarks/dynamics_data_efficiency.py``;
#: ``python benchmarks/springs_ablation.py`` is its cheap test bench.
SUITE = ('radius_graph', 'layer', 'peer', 'springs_step', 'models')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--only', nargs='+', choices=SUITE, default=SUITE)
    args, passed = parser.parse_known_args()
    failed = []
    for name in args.only:
        print(f'== benchmarks.{name}', flush=True)
        start = time.perf_counter()
        code = subprocess.run([sys.executable, '-m', f'benchmarks.{name}',
                               *passed]).returncode
        print(f'== benchmarks.{name}: {"ok" if code == 0 else "FAILED"} in '
              f'{time.perf_counter() - start:.0f} s', flush=True)
        if code:
            failed.append(name)
    if failed:
        sys.exit(f'failed: {", ".join(failed)}')


if __name__ == '__main__':
    main()
