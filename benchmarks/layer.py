r"""One :class:`~torch_lie.nn.LieSelfAttentionConv` forward and backward:
its two kernels side by side, and PyG's ``TransformerConv``.

Implementations (same inputs, interleaved in one process):

- ``sparse``: ``conv(x, edge_index, edge_attr)`` on an edge list sorted by
  target (an :class:`~torch_geometric.EdgeIndex`, as
  :class:`~torch_lie.nn.LieTransformer` passes the lift's edges): the lean
  kernel (edges in chunks, only the ``[E, H]`` weights saved for backward,
  segment softmax);
- ``message passing``: the same layer with ``conv.lean = False``, PyG's
  message passing keeping every per-edge tensor (the kernel before the lean
  one, and the one dropout, explanations and compiled graphs run);
- ``sparse+compile``: the layer under :func:`torch.compile` (dynamic
  shapes, compiled once; compiled graphs run the message passing);
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
- ``radius``: one point cloud of 10^3 to 6.25 x 10^5 points (uniform in a
  3D box of fixed density, numbered cell by cell of a grid of the radius, as
  a voxelised scan comes; the T(3) pair embedding :obj:`x_v - x_u` within a
  fixed radius, self pairs included), 1.4 x 10^4 to 10^7 edges: time and
  memory should grow linearly with the edges. The dense kernel cannot
  restrict attention to a radius: it runs on the complete graph of the
  cloud (all :obj:`N^2` pairs, their embeddings made only if it runs),
  shown while it fits.

The bytes per edge saved for backward and at the peak are the slopes
between two radius graphs (0.5 and 1.5 million edges), each in a fresh
process. A case is skipped (and marked) when its memory, extrapolated from the
previous size's measured peak, would exceed ``--memory-budget``. Writes
``layer.json``, ``layer.md`` and ``layer.png`` (time per edge and peak
memory against edges).

    python -m benchmarks.layer [--quick] [--device cuda]
"""
import argparse
import json
import math
import os
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.nn.conv import TransformerConv

from benchmarks import common
from torch_lie.nn import LieSelfAttentionConv
from torch_lie.transforms.lift import complete_graphs
from torch_lie.utils import radius_graph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IMPLS = ('sparse', 'message passing', 'sparse+compile', 'dense',
         'TransformerConv')
TARGETS = (
    'Targets (issue 12): saved activations per edge <= 0.5 KB and peak '
    'memory of forward + backward <= 1 KB per edge (slopes between two sizes,'
    ' each in a fresh process); 10^7 edges within 16 GB; time per edge flat '
    'within 1.3x from 10^4 to 10^7 edges on radius graphs; eager <= 1.2x '
    "TransformerConv's time on the same edges, compiled <= 1.0x.")


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
            # The lift's edges come sorted by target; the compiled graph and
            # PyG's layer take a plain tensor.
            edge_index = self.edge_index
            if impl in ('sparse', 'message passing'):
                N = self.x.size(0)
                edge_index = EdgeIndex(edge_index, sparse_size=(N, N),
                                       sort_order='col')
            lean = impl == 'sparse'

            def run():
                layers['sparse'].lean = lean
                return conv(self.x, edge_index, self.edge_attr)

        def step() -> Tensor:
            conv.zero_grad(set_to_none=True)
            self.x.grad = None
            out = run()
            out.sum().backward()
            return out

        step.forward = run
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
    pos = torch.rand(num_points, 3, generator=gen) * side
    # Numbered cell by cell: neighbours are near in memory too.
    cell = pos.floor().long()
    cells = int(side) + 1
    pos = pos[((cell[:, 0] * cells + cell[:, 1]) * cells
               + cell[:, 2]).argsort()].to(device)
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


#: Points of the two radius graphs of the memory slope (about 0.5 and 1.5
#: million edges), each measured in a fresh process.
SLOPE_POINTS = (31_250, 93_750)
SLOPE_IMPLS = ('sparse', 'message passing', 'TransformerConv')


def probe(impl: str, num_points: int, args) -> dict:
    r"""Peak memory of one forward + backward of :obj:`impl` on a radius
    graph, and the bytes it saves for backward (tensors other than the
    inputs and parameters), in this process."""
    device = torch.device(args.device)
    case = radius_case(num_points, args.neighbours, args.channels, device)
    conv = LieSelfAttentionConv(args.channels, args.channels, 3, args.heads,
                                args.kernel_dim).to(device)
    layers = {'sparse': conv, 'message passing': conv,
              'TransformerConv': TransformerConv(
                  args.channels, args.channels // args.heads, args.heads,
                  edge_dim=3).to(device)}
    step = case.runner(impl, layers)
    step()
    given = {t.untyped_storage().data_ptr() for t in
             [case.x, case.edge_attr, *layers[impl].parameters()]}
    saved = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if t.dtype.is_floating_point and storage.data_ptr() not in given:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step.forward()
    return {'edges': case.num_edges, 'saved_bytes': sum(saved.values()),
            'peak_gb': common.peak_memory_gb(step, device)}


def memory_slopes(args) -> Dict[str, dict]:
    r"""Saved and peak bytes per edge: the slopes between the radius graphs
    of :obj:`SLOPE_POINTS`, each size in a fresh process."""
    slopes = {}
    for impl in SLOPE_IMPLS:
        runs = []
        for points in SLOPE_POINTS:
            cmd = [sys.executable, '-m', 'benchmarks.layer', '--probe',
                   f'{impl}:{points}', '--device', args.device,
                   '--channels', str(args.channels), '--heads',
                   str(args.heads), '--kernel-dim', str(args.kernel_dim),
                   '--neighbours', str(args.neighbours)]
            out = subprocess.run(cmd, capture_output=True, text=True,
                                 check=True, cwd=ROOT).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        (a, b), edges = runs, runs[1]['edges'] - runs[0]['edges']
        slopes[impl] = {
            'runs': runs,
            'saved_bytes_per_edge': (b['saved_bytes'] - a['saved_bytes'])
            / edges,
            'peak_bytes_per_edge': (b['peak_gb'] - a['peak_gb']) * 1e9 / edges}
        print(f'memory {impl}: ' + ', '.join(
            f'{k} {v:.0f}' for k, v in slopes[impl].items() if k != 'runs'),
            flush=True)
    return slopes


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
    parser.add_argument('--probe', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = common.setup(args)
    if args.probe is not None:  # one size in a fresh process
        impl, points = args.probe.split(':')
        print(json.dumps(probe(impl, int(points), args)))
        return {}
    if args.quick:
        sizes = {'full': [32, 128], 'radius': [1000, 3000]}
        args.repeats = min(args.repeats, 3)
    else:
        sizes = {'full': [32, 128, 512, 1024, 2048, 4096],
                 'radius': [1000, 10_000, 100_000, 625_000]}
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
            'message passing': conv,
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
    if not args.quick:
        result['memory_slopes'] = memory_slopes(args)

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
    peaks = ('sparse', 'message passing', 'dense', 'TransformerConv')
    for sweep, rows in result['sweeps'].items():
        title, size = titles[sweep]
        lines += [f'## {title}', '',
                  f'| {size} | edges | ' + ' | '.join(IMPLS) +
                  ' | sparse / TransformerConv | compiled / TransformerConv'
                  ' | message passing / sparse | sparse ns/edge | peak GB ('
                  + ' / '.join(peaks) + ') |',
                  '|' + '---|' * (len(IMPLS) + 7)]
        for row in rows:
            r = row['impls']
            per_edge = (f'{r["sparse"]["median_s"] / row["edges"] * 1e9:.0f}'
                        if 'median_s' in r['sparse'] else '-')
            peak = ' / '.join(f'{r[i]["peak_gb"]:.2f}' if 'peak_gb' in r[i]
                              else '-' for i in peaks)
            lines.append(
                f'| {row["size"]:,} | {row["edges"]:,} | ' +
                ' | '.join(common.fmt_time(r[i]) for i in IMPLS) +
                f' | {ratio(r, "sparse", "TransformerConv")} | '
                f'{ratio(r, "sparse+compile", "TransformerConv")} | '
                f'{ratio(r, "message passing", "sparse")} | {per_edge} | '
                f'{peak} |')
        lines.append('')
    slopes = result.get('memory_slopes')
    if slopes:
        runs = next(iter(slopes.values()))['runs']
        lines += ['## Memory per edge', '',
                  'Slopes between radius graphs of '
                  f'{runs[0]["edges"]:,} and {runs[1]["edges"]:,} edges, each '
                  'in a fresh process: bytes saved for backward by the forward '
                  '(tensors other than inputs and parameters; per-node tensors '
                  'included, as the nodes grow with the edges) and peak RSS of '
                  'a forward + backward.', '',
                  '| implementation | saved bytes / edge | peak bytes / edge |',
                  '|---|---|---|']
        lines += [f'| {impl} | {s["saved_bytes_per_edge"]:.0f} | '
                  f'{s["peak_bytes_per_edge"]:.0f} |'
                  for impl, s in slopes.items()]
        lines.append('')
    return lines + ['## Targets', ''] + verdicts(result)


def verdicts(result: dict) -> List[str]:
    r"""Each of the targets against the figures of this run."""
    def median(row, impl):
        return row['impls'][impl].get('median_s')

    def verdict(ok: bool) -> str:
        return 'met' if ok else 'MISSED'

    lines = []
    slopes = result.get('memory_slopes', {}).get('sparse')
    if slopes:
        saved, peak = (slopes['saved_bytes_per_edge'],
                       slopes['peak_bytes_per_edge'])
        lines += [f'- Saved for backward: {saved:.0f} bytes per edge (target '
                  f'<= 500): {verdict(saved <= 500)}.',
                  f'- Peak memory of forward + backward: {peak:.0f} bytes per '
                  f'edge (target <= 1000): {verdict(peak <= 1000)}.']
    radius = result['sweeps'].get('radius', [])
    largest = [r for r in radius if r['edges'] >= 1e7]
    if largest:
        r = largest[0]['impls']['sparse']
        ok = 'peak_gb' in r and r['peak_gb'] <= 16
        found = (f'{r["peak_gb"]:.2f} GB' if 'peak_gb' in r
                 else r.get('skipped', 'not run'))
        lines.append(f'- {largest[0]["edges"]:,} edges, forward + backward: '
                     f'{found} (target <= 16 GB): {verdict(ok)}.')
    for impl, target in (('sparse', 1.2), ('sparse+compile', 1.0)):
        ratios = [median(r, impl) / median(r, 'TransformerConv')
                  for rows in result['sweeps'].values() for r in rows
                  if r['edges'] >= 1e4 and median(r, impl)
                  and median(r, 'TransformerConv')]
        if ratios:
            lines.append(f'- {impl} / TransformerConv on the same edges (10^4 '
                         f'edges and more): {min(ratios):.2f}-'
                         f'{max(ratios):.2f}x (target <= {target}x): '
                         f'{verdict(max(ratios) <= target)}.')
    rows = [r for r in radius if 1e4 <= r['edges'] and median(r, 'sparse')]
    if rows:
        per_edge = [median(r, 'sparse') / r['edges'] * 1e9 for r in rows]
        lines.append(f'- Radius graphs, time per edge from {rows[0]["edges"]:,}'
                     f' to {rows[-1]["edges"]:,} edges: {min(per_edge):.0f}-'
                     f'{max(per_edge):.0f} ns ({max(per_edge) / min(per_edge):.2f}'
                     f'x apart; target within 1.3x): '
                     f'{verdict(max(per_edge) <= 1.3 * min(per_edge))}.')
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
