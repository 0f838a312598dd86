r"""Benchmarks :func:`torch_lie.utils.radius_graph` backends.

Uniform points in a 3D box whose size grows with :math:`N`, so that the
density (and the mean number of neighbours within :math:`r = 1`) stays fixed.
Backends are interleaved within one process; each timing is the median of
several repeats after a warm-up run.

.. code-block:: bash

    python benchmarks/radius_graph.py --max-points 1000000
"""
import argparse
import gc
import math
import os
import platform
import statistics
import time

import torch

from torch_lie.utils import radius_graph
from torch_lie.utils.radius import _torch_cluster


def uniform_box(num_points: int, neighbours: float, seed: int) -> torch.Tensor:
    # Side length giving `neighbours` expected points in a unit ball.
    side = (num_points * (4.0 / 3.0) * math.pi / neighbours)**(1.0 / 3.0)
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(num_points, 3, generator=gen) * side


def timed(pos: torch.Tensor, backend: str) -> float:
    gc.collect()
    start = time.perf_counter()
    radius_graph(pos, 1.0, backend=backend)
    return time.perf_counter() - start


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--max-points', type=int, default=10**6)
    parser.add_argument('--neighbours', type=float, default=25.0,
                        help='expected neighbours per point (default: 25)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed repeats per size (default: 5, and 3 '
                        'from 10^6 points on)')
    parser.add_argument('--brute-max', type=int, default=20_000,
                        help="largest N timed with 'brute' (default: 2e4)")
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: unchanged)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    backends = ['torch']
    if _torch_cluster() is not None:
        backends.append('cluster')
    sizes = [n for n in (10**3, 10**4, 10**5, 10**6) if n <= args.max_points]

    print(f'# radius_graph, {args.neighbours:g} expected neighbours per '
          f'point, r = 1, float32, CPU')
    print(f'# {cpu_name()}, {os.cpu_count()} logical CPUs, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'load average before: {os.getloadavg()[0]:.2f}')
    rows = []
    for num_points in sizes:
        pos = uniform_box(num_points, args.neighbours, args.seed)
        names = backends + (['brute'] if num_points <= args.brute_max else [])
        repeats = args.repeats if num_points < 10**6 else min(args.repeats, 3)

        # Warm-up (also checks that all backends agree exactly).
        outs = {name: radius_graph(pos, 1.0, backend=name) for name in names}
        ref = outs['torch']
        for name, out in outs.items():
            if not torch.equal(out, ref):
                raise RuntimeError(f"'{name}' differs from 'torch' at "
                                   f"N={num_points}")
        num_edges = ref.size(1)
        del outs, ref

        times = {name: [] for name in names}
        for _ in range(repeats):
            for name in names:  # Interleaved.
                times[name].append(timed(pos, name))
        med = {name: statistics.median(t) for name, t in times.items()}
        rows.append((num_points, num_edges, med))
        print(f'# N={num_points}: ' + ', '.join(
            f'{name} {m:.4f}s' for name, m in med.items()), flush=True)

    print(f'# load average after: {os.getloadavg()[0]:.2f}')
    print()
    cols = ['torch', 'cluster', 'brute']
    header = (['N', 'edges'] + [f'{c} (s)' for c in cols] +
              ['torch ns/point', 'torch / cluster'])
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for num_points, num_edges, med in rows:
        cells = [f'{num_points:,}', f'{num_edges:,}']
        cells += [f'{med[c]:.4f}' if c in med else '-' for c in cols]
        cells.append(f"{med['torch'] / num_points * 1e9:,.0f}")
        ratio = med['torch'] / med['cluster'] if 'cluster' in med else None
        cells.append(f'{ratio:.2f}' if ratio is not None else '-')
        print('| ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
    main()
