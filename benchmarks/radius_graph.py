r""":func:`torch_lie.utils.radius_graph` backends side by side: our cell
list (``torch``), torch-cluster's KD-tree (``cluster``, when it loads) and
all-pairs distances (``brute``, up to ``--brute-max`` points).

Uniform points in a 3D box whose size grows with :math:`N`, so that the
density (and the mean number of neighbours within :math:`r = 1`) stays
fixed; the backends must return identical edges. Writes
``radius_graph.json`` and ``radius_graph.md``.

    python -m benchmarks.radius_graph [--quick] [--device cuda]
"""
import functools
import math
from typing import List, Optional

import torch

from benchmarks import common
from torch_lie.utils import radius_graph
from torch_lie.utils.radius import _torch_cluster

TARGET = ('Target: within 1.5x of torch-cluster at 10^6 points, '
          'and linear (time per point flat).')


def uniform_box(num_points: int, neighbours: float, seed: int,
                device) -> torch.Tensor:
    r"""Points in a box with :obj:`neighbours` expected per unit ball."""
    side = (num_points * 4 / 3 * math.pi / neighbours)**(1 / 3)
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(num_points, 3, generator=gen) * side).to(device)


def verdict(rows: List[dict]) -> str:
    r"""The target against the largest size with both backends."""
    both = [r for r in rows if 'cluster' in r['backends']]
    per_point = [r['backends']['torch']['median_s'] / r['points'] * 1e9
                 for r in rows if r['points'] >= 10**4]
    if not both or not per_point:
        return 'Target: not measured (torch-cluster or sizes missing).'
    last = both[-1]
    ratio = (last['backends']['torch']['median_s']
             / last['backends']['cluster']['median_s'])
    spread = max(per_point) / min(per_point)
    ok = ratio <= 1.5 and spread <= 1.5
    return (f'Target: {ratio:.2f}x torch-cluster\'s time at '
            f'{last["points"]:,} points, time per point within '
            f'{spread:.2f}x from 10^4 points on: **'
            f'{"met" if ok else "MISSED"}**.')


def main(argv: Optional[List[str]] = None) -> dict:
    parser = common.parser(__doc__)
    parser.add_argument('--neighbours', type=float, default=25.0,
                        help='expected neighbours per point')
    parser.add_argument('--brute-max', type=int, default=20_000,
                        help="largest N timed with 'brute'")
    args = parser.parse_args(argv)
    device = common.setup(args)
    sizes = [10**3, 10**4] if args.quick else [10**3, 10**4, 10**5, 10**6]
    backends = ['torch'] + (['cluster'] if _torch_cluster() is not None
                            and device.type == 'cpu' else [])

    result = {'command': common.command(), 'machine': common.machine(device),
              'repeats': args.repeats, 'neighbours': args.neighbours,
              'rows': []}
    for num_points in sizes:
        pos = uniform_box(num_points, args.neighbours, 0, device)
        names = backends + (['brute'] if num_points <= args.brute_max
                            else [])
        ref = radius_graph(pos, 1.0, backend='torch')
        for name in names[1:]:
            if not torch.equal(radius_graph(pos, 1.0, backend=name), ref):
                raise RuntimeError(f"'{name}' differs from 'torch' at "
                                   f'N={num_points}')
        fns = {name: functools.partial(radius_graph, pos, 1.0, backend=name)
               for name in names}
        times = common.interleaved(fns, args.repeats, device)
        result['rows'].append({'points': num_points, 'edges': ref.size(1),
                               'backends': times})
        print(f'N={num_points}: ' + ', '.join(
            f'{k} {common.fmt_time(v)}' for k, v in times.items()),
            flush=True)

    lines = common.header('radius_graph backends', result)
    lines += [f'{args.neighbours:g} expected neighbours per point, r = 1, '
              f'float32, {device}.', '', TARGET, '',
              '| N | edges | torch | cluster | brute | torch ns/point '
              '| torch / cluster |', '|---|---|---|---|---|---|---|']
    for row in result['rows']:
        t = row['backends']
        per_point = t['torch']['median_s'] / row['points'] * 1e9
        ratio = (f'{t["torch"]["median_s"] / t["cluster"]["median_s"]:.2f}'
                 if 'cluster' in t else '-')
        lines.append(f'| {row["points"]:,} | {row["edges"]:,} | ' + ' | '.join(
            common.fmt_time(t.get(name)) for name in
            ('torch', 'cluster', 'brute')) + f' | {per_point:,.0f} | '
            f'{ratio} |')
    lines += ['', verdict(result['rows'])]
    common.write('radius_graph', result, lines, args)
    return result


if __name__ == '__main__':
    main()
