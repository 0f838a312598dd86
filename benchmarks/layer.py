r"""One :class:`~torch_lie.nn.LieSelfAttentionConv` forward and backward:
its two kernels side by side, and PyG's ``TransformerConv``.

Implementations (same inputs, interleaved in one process):

- ``sparse``: ``conv(x, edge_index, edge_attr)`` on an edge list (PyG
  message passing, scatter softmax);
- ``sparse+compile``: the same under :func:`torch.compile` (dynamic shapes,
  compiled once);
- ``dense``: ``conv(x, edge_index, edge_attr, graph_size=M)`` on the same
  complete graphs (:func:`torch_lie.transforms.lift.complete_graphs`, the
  edges a full-attention ``Lift`` makes), the layer's dense kernel, which
  :class:`~torch_lie.nn.LieTransformer` runs with ``kernel='dense'`` (on
  graphs padded to equal size): batched matrix products for the content
  logits and the aggregation over all pairs of every graph;
- ``TransformerConv``: PyG's :class:`~torch_geometric.nn.conv.TransformerConv`
  with :obj:`edge_dim` on the identical edges: a non-equivariant attention
  layer with fewer operations per edge, the practical floor.

Two sweeps:

- ``full``: complete graphs (self pairs included) of :obj:`M` = 32 to 4096
  lifted elements, batches of several graphs at small :obj:`M`;
- ``radius``: one point cloud of 10^3 to 10^6 points (uniform in a 3D box of
  fixed density, the T(3) pair embedding :obj:`x_v - x_u` within a fixed
  radius, self pairs included): time and memory should grow linearly with
  the edges. The dense kernel cannot restrict attention to a radius: it
  runs on the complete graph of the cloud (all :obj:`N^2` pairs, their
  embeddings made only if it runs), shown while it fits.

A case is skipped (and marked) when its memory, extrapolated from the
previous size's measured peak, would exceed ``--memory-budget``. Writes
``layer.json``, ``layer.md`` and ``layer.png`` (time per edge and peak
memory against edges).

    python -m benchmarks.layer [--quick] [--device cuda]
"""
import math
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.nn.conv import TransformerConv

from benchmarks import common
from torch_lie.nn import LieSelfAttentionConv
from torch_lie.transforms.lift import complete_graphs
from torch_lie.utils import radius_graph

IMPLS = ('sparse', 'sparse+compile', 'dense', 'TransformerConv')
TARGETS = (
    'Targets: full attention at M >= 256: sparse at least 4x '
    'faster and 5x less peak memory than dense (the original '
    "implementation's formulation, which the dense kernel follows); sparse "
    'within 1.5x of '
    "TransformerConv's time on the same edges; radius graphs: time per edge "
    'within 1.5x from 10^4 to 10^6 edges.')


class Case:
    r"""Inputs of one size and a forward + backward per implementation.
    Complete graphs of :obj:`graph_size` elements serve both kernels; for a
    radius graph (:obj:`pos` given), the dense kernel gets the complete
    graph of the cloud, made only if it runs."""
    def __init__(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor,
                 graph_size: Optional[int] = None,
                 pos: Optional[Tensor] = None):
        self.x = x.requires_grad_()
        self.edge_index, self.edge_attr = edge_index, edge_attr
        self.graph_size, self.pos = graph_size, pos
        self.complete: Optional[Tuple[Tensor, Tensor]] = None

    @property
    def full(self) -> bool:
        return self.pos is None

    @property
    def num_edges(self) -> int:
        return self.edge_index.size(1)

    @property
    def num_pairs(self) -> int:
        return self.num_edges if self.full else self.x.size(0)**2

    def complete_inputs(self) -> Tuple[Tensor, Tensor, int]:
        r"""Complete graphs (edges, pair embeddings) and their size."""
        if self.full:
            return self.edge_index, self.edge_attr, self.graph_size
        if self.complete is None:
            edge_index = complete_graphs(1, self.pos.size(0), self.pos.device)
            self.complete = (edge_index, self.pos[edge_index[0]]
                             - self.pos[edge_index[1]])
        return (*self.complete, self.pos.size(0))

    def runner(self, impl: str, layers: Dict[str, torch.nn.Module]
               ) -> Callable[[], Tensor]:
        if impl == 'dense':
            conv = layers['sparse']
            edge_index, edge_attr, graph_size = self.complete_inputs()

            def run():
                return conv(self.x, edge_index, edge_attr,
                            graph_size=graph_size)
        else:
            conv = layers[impl]

            def run():
                return conv(self.x, self.edge_index, self.edge_attr)

        def step() -> Tensor:
            conv.zero_grad(set_to_none=True)
            self.x.grad = None
            out = run()
            out.sum().backward()
            return out

        return step


def full_case(size: int, pairs: int, channels: int, edge_dim: int,
              device) -> Case:
    num_graphs = max(1, pairs // size**2)
    x = torch.randn(num_graphs * size, channels, device=device)
    # Sorted by target, then source, as the dense kernel needs them.
    edge_index = complete_graphs(num_graphs, size, device)
    edge_attr = torch.randn(edge_index.size(1), edge_dim, device=device)
    return Case(x, edge_index, edge_attr, graph_size=size)


def radius_case(num_points: int, neighbours: float, channels: int,
                device) -> Case:
    # A box whose volume gives `neighbours` expected points per unit ball.
    side = (num_points * 4 / 3 * math.pi / neighbours)**(1 / 3)
    gen = torch.Generator().manual_seed(num_points)
    pos = (torch.rand(num_points, 3, generator=gen) * side).to(device)
    edge_index = radius_graph(pos, 1.0, loop=True)
    edge_attr = pos[edge_index[0]] - pos[edge_index[1]]
    x = torch.randn(num_points, channels, generator=gen).to(device)
    return Case(x, edge_index, edge_attr, pos=pos)


def measure(case: Case, layers: Dict[str, torch.nn.Module], impls, args,
            device, budget: Dict[str, Optional[float]]) -> Dict[str, dict]:
    r"""Times the implementations that fit the memory budget; records peak
    memory, and per-edge bytes to extrapolate the next size."""
    rows = {}
    for impl in impls:
        edges = case.num_pairs if impl == 'dense' else case.num_edges
        rows[impl] = {'edges': edges}
        if budget[impl] is not None:
            estimate = budget[impl] * edges / 1e9
            if estimate > args.memory_budget:
                rows[impl]['skipped'] = f'out of memory (~{estimate:.0f} GB)'
    steps = {impl: case.runner(impl, layers) for impl in impls
             if 'skipped' not in rows[impl]}
    for impl in list(steps):  # the first call, within the budget
        reason = common.fits(steps[impl], args.memory_budget)
        if reason is not None:
            rows[impl]['skipped'] = reason
            del steps[impl]
    if case.full and 'sparse' in steps and 'dense' in steps:
        check_agreement(case, layers)
    timed = common.interleaved(steps, args.repeats, device)
    for impl, step in steps.items():
        peak = common.peak_memory_gb(step, device)
        rows[impl].update(timed[impl], peak_gb=peak)
        # Bytes per edge (or pair) of this run, an upper bound that
        # includes the process's baseline: extrapolates the next size.
        budget[impl] = peak * 1e9 / rows[impl]['edges']
    return rows


def check_agreement(case: Case, layers: Dict[str, torch.nn.Module]):
    r"""The dense and sparse kernels compute the same attention."""
    edge_index, edge_attr, graph_size = case.complete_inputs()
    with torch.no_grad():
        sparse = layers['sparse'](case.x, edge_index, edge_attr)
        dense = layers['sparse'](case.x, edge_index, edge_attr,
                                 graph_size=graph_size)
    if not torch.allclose(sparse, dense, atol=1e-4):
        raise RuntimeError('dense and sparse kernels disagree')


def main(argv: Optional[List[str]] = None) -> dict:
    parser = common.parser(__doc__)
    parser.add_argument('--channels', type=int, default=64)
    parser.add_argument('--heads', type=int, default=8)
    parser.add_argument('--kernel-dim', type=int, default=16)
    parser.add_argument('--memory-budget', type=float, default=12.0,
                        help='skip cases expected to need more GB')
    parser.add_argument('--sweeps', nargs='+', default=['full', 'radius'],
                        choices=['full', 'radius'])
    parser.add_argument('--neighbours', type=float, default=16.0,
                        help='expected points per unit ball (radius sweep)')
    args = parser.parse_args(argv)
    device = common.setup(args)
    if args.quick:
        sizes = {'full': [32, 128], 'radius': [1000, 3000]}
        args.repeats = min(args.repeats, 3)
    else:
        sizes = {'full': [32, 64, 128, 256, 512, 1024, 2048, 4096],
                 'radius': [1000, 10_000, 100_000, 1_000_000]}
    # Pairs per full-attention batch: B = pairs // M^2 graphs.
    pairs = 1 << (14 if args.quick else 18)

    edge_dims = {'full': 6, 'radius': 3}  # SE(3) log / T(3) embeddings
    result = {'command': common.command(), 'machine': common.machine(device),
              'repeats': args.repeats, 'mm_gflops': common.mm_gflops(device),
              'config': {'channels': args.channels, 'heads': args.heads,
                         'kernel_dim': args.kernel_dim,
                         'attention': 'softmax', 'pairs_per_batch': pairs,
                         'neighbours': args.neighbours},
              'sweeps': {}}
    for sweep in args.sweeps:
        torch.manual_seed(0)
        conv = LieSelfAttentionConv(args.channels, args.channels,
                                    edge_dims[sweep], args.heads,
                                    args.kernel_dim).to(device)
        layers = {
            'sparse': conv,
            'sparse+compile': torch.compile(conv, dynamic=True),
            'TransformerConv': TransformerConv(
                args.channels, args.channels // args.heads, args.heads,
                edge_dim=edge_dims[sweep]).to(device),
        }
        budget = dict.fromkeys(IMPLS)
        rows = []
        for size in sizes[sweep]:
            if sweep == 'full':
                case = full_case(size, pairs, args.channels, edge_dims[sweep],
                                 device)
            else:
                case = radius_case(size, args.neighbours, args.channels,
                                   device)
            timings = measure(case, layers, IMPLS, args, device, budget)
            rows.append({'size': size, 'edges': case.num_edges,
                         'impls': timings})
            print(f'{sweep} {size}: ' + ', '.join(
                f'{k} {common.fmt_time(v)}' for k, v in timings.items()),
                flush=True)
            del case
        result['sweeps'][sweep] = rows

    lines = report(result)
    path = common.write('layer', result, lines, args)
    plot(result, path + '.png')
    return result


def ratio(rows: Dict[str, dict], a: str, b: str,
          key: str = 'median_s') -> str:
    if key not in rows.get(a, {}) or key not in rows.get(b, {}):
        return '-'
    return f'{rows[a][key] / rows[b][key]:.2f}x'


def report(result: dict) -> List[str]:
    cfg = result['config']
    lines = common.header('LieSelfAttentionConv forward + backward', result)
    lines += [f'Layer: {cfg["channels"]} channels, {cfg["heads"]} heads, '
              f'kernel dim {cfg["kernel_dim"]}, softmax attention. Plain '
              f'`torch.mm` in the same run: {result["mm_gflops"]:.0f} '
              f'GFLOP/s.', '', TARGETS, '']
    titles = {'full': ('Full attention (complete graphs of M lifted '
                       f'elements, {cfg["pairs_per_batch"]:,} pairs per '
                       'batch)', 'M'),
              'radius': ('Radius graphs (one cloud of N points, '
                         f'{cfg["neighbours"]:g} expected neighbours)', 'N')}
    for sweep, rows in result['sweeps'].items():
        title, size = titles[sweep]
        lines += [f'## {title}', '',
                  f'| {size} | edges | ' + ' | '.join(IMPLS) +
                  ' | dense / sparse | sparse / TransformerConv | compile '
                  'speedup | sparse ns/edge | peak GB (sparse / dense / '
                  'TransformerConv) |',
                  '|' + '---|' * (len(IMPLS) + 7)]
        for row in rows:
            r = row['impls']
            per_edge = (f'{r["sparse"]["median_s"] / row["edges"] * 1e9:.0f}'
                        if 'median_s' in r['sparse'] else '-')
            peaks = ' / '.join(f'{r[i]["peak_gb"]:.2f}' if 'peak_gb' in r[i]
                               else '-' for i in ('sparse', 'dense',
                                                  'TransformerConv'))
            lines.append(
                f'| {row["size"]:,} | {row["edges"]:,} | ' +
                ' | '.join(common.fmt_time(r[i]) for i in IMPLS) +
                f' | {ratio(r, "dense", "sparse")} | '
                f'{ratio(r, "sparse", "TransformerConv")} | '
                f'{ratio(r, "sparse", "sparse+compile")} | {per_edge} | '
                f'{peaks} |')
        lines.append('')
    return lines + ['## Targets', ''] + verdicts(result)


def verdicts(result: dict) -> List[str]:
    r"""Each of the targets against the figures of this run."""
    def median(row, impl):
        return row['impls'][impl].get('median_s')

    def verdict(ok: bool) -> str:
        return 'met' if ok else 'MISSED'

    lines = []
    full = [row for row in result['sweeps'].get('full', [])
            if row['size'] >= 256 and median(row, 'sparse')
            and median(row, 'dense')]
    if full:
        speed = [median(r, 'dense') / median(r, 'sparse') for r in full]
        memory = [r['impls']['dense']['peak_gb']
                  / r['impls']['sparse']['peak_gb'] for r in full]
        lines += [f'- Full attention, M >= 256: sparse {min(speed):.2f}-'
                  f'{max(speed):.2f}x faster than dense (target >= 4x): '
                  f'{verdict(min(speed) >= 4)}; {min(memory):.2f}-'
                  f'{max(memory):.2f}x less peak memory (target >= 5x): '
                  f'{verdict(min(memory) >= 5)}.']
    for impl in ('sparse', 'sparse+compile'):
        ratios = [median(r, impl) / median(r, 'TransformerConv')
                  for rows in result['sweeps'].values() for r in rows
                  if median(r, impl) and median(r, 'TransformerConv')]
        if ratios:
            lines.append(f'- {impl} / TransformerConv on the same edges: '
                         f'{min(ratios):.2f}-{max(ratios):.2f}x (target <= '
                         f'1.5x): {verdict(max(ratios) <= 1.5)}.')
    rows = [r for r in result['sweeps'].get('radius', [])
            if 1e4 <= r['edges'] and median(r, 'sparse')]
    if rows:
        per_edge = [median(r, 'sparse') / r['edges'] * 1e9 for r in rows]
        lines.append(f'- Radius graphs, time per edge from {rows[0]["edges"]:,}'
                     f' to {rows[-1]["edges"]:,} edges: {min(per_edge):.0f}-'
                     f'{max(per_edge):.0f} ns ({max(per_edge) / min(per_edge):.2f}'
                     f'x apart; target within 1.5x): '
                     f'{verdict(max(per_edge) <= 1.5 * min(per_edge))}.')
    return lines


def plot(result: dict, path: str):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {'full': '-', 'radius': '--'}
    for sweep, rows in result['sweeps'].items():
        for impl in IMPLS:
            pts = [(row['impls'][impl]['edges'],
                    row['impls'][impl]['median_s'],
                    row['impls'][impl]['peak_gb']) for row in rows
                   if 'median_s' in row['impls'][impl]]
            if not pts:
                continue
            edges, secs, peaks = zip(*pts)
            label = f'{impl} ({sweep})'
            axes[0].loglog(edges, [s / e * 1e9 for s, e in zip(secs, edges)],
                           styles[sweep], marker='o', label=label)
            axes[1].loglog(edges, peaks, styles[sweep], marker='o',
                           label=label)
            skipped = [row['impls'][impl]['edges'] for row in rows
                       if 'skipped' in row['impls'][impl]]
            for e in skipped[:1]:
                axes[1].axvline(e, color=axes[1].lines[-1].get_color(),
                                ls=':', lw=1)
    axes[0].set(xlabel='edges (all pairs for dense)', ylabel='ns per edge',
                title='forward + backward time per edge')
    axes[1].set(xlabel='edges (all pairs for dense)',
                ylabel='peak memory (GB)',
                title='peak memory (dotted: first size out of memory)')
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == '__main__':
    main()
