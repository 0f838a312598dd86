r"""Training-step throughput of whole LieTransformer models: the sparse path
against the dense formulation, and ``torch.compile`` of the sparse model.

Each configuration builds one :class:`~torch_lie.nn.LieTransformer` and one
Adam optimiser; its variants are training steps (lift, forward, loss,
backward, Adam step) of that same model, timed interleaved in one process
(:func:`benchmarks.common.interleaved`), median of several steps after
warm-up:

- ``sparse``: the general path, :meth:`~torch_lie.transforms.Lift.lift` of
  the concatenated points (full attention within each graph) and
  :meth:`~torch_lie.nn.LieTransformer.forward` (PyG message passing);
- ``sparse-25nn``: the same with ``Lift(max_num_neighbors=25)``, the
  neighbourhoods of the original QM9 script;
- ``sparse+compile``: ``torch.compile`` of the model, the lift eager;
- ``dense``: the dense formulation, points padded to ``[B, N, d]`` with a
  mask, :meth:`~torch_lie.transforms.Lift.lift_dense` (pair tensors
  ``[B, M, M, D]``) and :meth:`~torch_lie.nn.LieTransformer.forward_dense`.

Inputs: QM9-sized molecules from ``ase.collections.g2``
(:func:`benchmarks.common.qm9_sized_molecules`, 10 to 14 atoms), with the paper's
15 atom features, standardised random targets and an L1 loss; constellations
from :func:`~torch_lie.datasets.constellation.generate_constellations`
(padded to 34 points) with their 33 sorted-distance features and the cross
entropy of the 4 three-way counting heads. Every step draws fresh lift
samples, as training does.

Also reported: matrix FLOPs of one step of each eager variant
(:func:`benchmarks.common.count_flops`, forward, backward and Adam), the
speed of a plain ``torch.mm`` measured between the steps, peak memory of
one step (:func:`benchmarks.common.peak_memory_gb`; on CPU the process's
peak RSS, baseline included), and the original implementation's times from
DESIGN.md section 4 (an earlier measurement of a different program, not
part of this run)::

    python -m benchmarks.models [--quick] [--configs qm9-paper ...]
"""
import dataclasses
import statistics
import time
from typing import Callable, Dict, List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.utils import to_dense_batch

from benchmarks import common
from torch_lie.datasets.constellation import (
    constellation_distance_features,
    generate_constellations,
)
from torch_lie.datasets.qm9 import qm9_features
from torch_lie.io.ase import atoms_to_data
from torch_lie.nn import LieTransformer
from torch_lie.transforms import Lift


@dataclasses.dataclass(frozen=True)
class Config:
    task: str  # 'qm9' or 'constellation'
    group: str
    num_samples: int
    hidden: int
    layers: int
    heads: int
    batch_size: int
    variants: tuple = ('sparse', 'sparse+compile', 'dense')
    max_repeats: Optional[int] = None
    warmup: int = 1
    #: The original implementation (DESIGN.md section 4): seconds per step,
    #: peak RSS (GB), parameters.
    original: Optional[dict] = None


CONFIGS: Dict[str, Config] = {
    'qm9-paper': Config(
        'qm9', 'SE3', 4, 1504, 6, 8, 8,
        ('sparse', 'sparse-25nn', 'sparse+compile', 'dense'),
        original={'seconds': 2.39, 'peak_gb': 2.3, 'parameters': 55.5e6}),
    'qm9-paper-b100': Config('qm9', 'SE3', 4, 1504, 6, 8, 100,
                             ('sparse', 'dense'), max_repeats=2, warmup=0),
    'qm9-512': Config(
        'qm9', 'SE3', 1, 512, 6, 8, 32,
        original={'seconds': 0.60, 'peak_gb': 1.7, 'parameters': 10.0e6}),
    'qm9-small': Config('qm9', 'SE3', 4, 128, 4, 8, 100),
    'constellation-t2': Config(
        'constellation', 'T2', 1, 512, 6, 8, 90,
        original={'seconds': 3.62, 'peak_gb': 3.4, 'parameters': 10.0e6}),
    'constellation-se2': Config(
        'constellation', 'SE2', 2, 512, 6, 8, 90,
        original={'seconds': 21.1, 'peak_gb': 10.5, 'parameters': 10.0e6}),
}
PAPER_CONFIGS = ('qm9-paper', 'constellation-t2', 'constellation-se2')


def quick(cfg: Config) -> Config:
    r"""Tiny sizes of a configuration for a smoke run."""
    return dataclasses.replace(cfg, hidden=32, layers=2, heads=4,
                               batch_size=max(2, cfg.batch_size // 8))


class Inputs(NamedTuple):
    r"""One batch, concatenated (sparse path) and padded (dense path)."""
    pos: Tensor  #: :obj:`[N, d]`
    x: Tensor  #: :obj:`[N, F]`
    batch: Tensor  #: :obj:`[N]`
    pos_dense: Tensor  #: :obj:`[B, P, d]`
    x_dense: Tensor  #: :obj:`[B, P, F]`
    mask: Tensor  #: :obj:`[B, P]`
    y: Tensor  #: targets
    num_graphs: int


def pad(pos: Tensor, x: Tensor, batch: Tensor, y: Tensor, num_graphs: int,
        max_num_nodes: Optional[int] = None) -> Inputs:
    pos_dense, mask = to_dense_batch(pos, batch, batch_size=num_graphs,
                                     max_num_nodes=max_num_nodes)
    x_dense, _ = to_dense_batch(x, batch, batch_size=num_graphs,
                                max_num_nodes=max_num_nodes)
    return Inputs(pos, x, batch, pos_dense, x_dense, mask, y, num_graphs)


def qm9_inputs(batch_size: int, seed: int = 0) -> Inputs:
    r""":func:`benchmarks.common.qm9_sized_molecules` with the paper's 15
    atom features and standard normal targets."""
    data = Batch.from_data_list([
        atoms_to_data(atoms, qm9_features)
        for atoms in common.qm9_sized_molecules(batch_size, seed)])
    y = torch.randn(batch_size, generator=torch.Generator().manual_seed(seed))
    return pad(data.pos, data.x, data.batch, y, batch_size)


def constellation_inputs(batch_size: int, seed: int = 0) -> Inputs:
    r"""Generated constellations (padded to 34 points) with the reference
    implementation's 33 sorted-distance features."""
    gen = torch.Generator().manual_seed(seed)
    data = generate_constellations(batch_size, gen, dtype=torch.float32)
    x = constellation_distance_features(data.pos, data.mask)
    batch = torch.arange(batch_size).repeat_interleave(data.mask.sum(1))
    return pad(data.pos[data.mask], x[data.mask], batch, data.y, batch_size,
               max_num_nodes=data.pos.size(1))


def loss_fn(task: str, out: Tensor, y: Tensor) -> Tensor:
    if task == 'qm9':
        return F.l1_loss(out.view(-1), y)
    return F.cross_entropy(out.view(-1, 3), y.view(-1))


def training_step(cfg: Config, variant: str, model: LieTransformer,
                  optimizer: torch.optim.Optimizer,
                  inputs: Inputs) -> Callable[[], None]:
    r"""One training step of :obj:`variant` on :obj:`inputs`."""
    lift = Lift(cfg.group, num_samples=cfg.num_samples,
                max_num_neighbors=25 if variant == 'sparse-25nn' else None)
    net = torch.compile(model) if variant == 'sparse+compile' else model

    def forward() -> Tensor:
        if variant == 'dense':
            return model.forward_dense(*lift.dense_inputs(
                inputs.x_dense, inputs.pos_dense, inputs.mask))
        lifted = lift.lift(inputs.pos, inputs.batch)
        return net(inputs.x[lifted.point_index], lifted.edge_index,
                   lifted.edge_attr, lifted.batch,
                   num_graphs=inputs.num_graphs)

    def step() -> None:
        loss = loss_fn(cfg.task, forward(), inputs.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def run_config(name: str, cfg: Config, args,
               device: torch.device) -> dict:
    torch.manual_seed(0)
    make_inputs = qm9_inputs if cfg.task == 'qm9' else constellation_inputs
    inputs = Inputs(*(t.to(device) if isinstance(t, Tensor) else t
                      for t in make_inputs(cfg.batch_size)))
    model = LieTransformer(inputs.x.size(1), cfg.hidden,
                           1 if cfg.task == 'qm9' else 12, group=cfg.group,
                           num_layers=cfg.layers, heads=cfg.heads).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    lift = Lift(cfg.group, num_samples=cfg.num_samples)
    k, edges = lift.lift_size, lift.lift(inputs.pos, inputs.batch).edge_index
    size = {'points': inputs.pos.size(0),
            'points_per_graph': inputs.pos.size(0) / cfg.batch_size,
            'lifted_elements': inputs.pos.size(0) * k,
            'edges': edges.size(1),
            'dense_pairs': cfg.batch_size * (inputs.mask.size(1) * k)**2}
    if 'sparse-25nn' in cfg.variants:
        lift_25nn = Lift(cfg.group, cfg.num_samples, max_num_neighbors=25)
        size['edges_25nn'] = lift_25nn.lift(inputs.pos,
                                            inputs.batch).edge_index.size(1)
    variants = [v for v in cfg.variants
                if not (args.no_compile and v.endswith('compile'))]
    result = {'config': dataclasses.asdict(cfg), 'size': size,
              'parameters': sum(p.numel() for p in model.parameters()),
              'variants': {}}
    print(f'{name}: {result["parameters"]:,} parameters, {size}',
          flush=True)

    steps: Dict[str, Callable[[], None]] = {}
    for variant in variants:
        step = training_step(cfg, variant, model, optimizer, inputs)
        start = time.perf_counter()
        try:
            reason = common.fits(step, args.memory_budget)  # compiles
        except Exception as e:  # torch.compile may not work here
            if not variant.endswith('compile'):
                raise
            reason = f'compile failed: {type(e).__name__}'
        if reason is not None:
            result['variants'][variant] = {'skipped': reason}
            print(f'{name} {variant}: {reason}', flush=True)
            continue
        first = time.perf_counter() - start
        result['variants'][variant] = {'first_call_s': first}
        steps[variant] = step
        print(f'{name} {variant}: first step {first:.1f} s', flush=True)

    mm: List[float] = []
    fns = dict(steps, mm=lambda: mm.append(common.mm_gflops(device)))
    repeats = min(args.repeats, cfg.max_repeats or args.repeats)
    timing = common.interleaved(fns, repeats, device, warmup=cfg.warmup)
    result['mm_gflops'] = statistics.median(mm)

    flops = {v: common.count_flops(steps[v]) for v in steps
             if not v.endswith('compile')}
    base = timing.get('sparse', {}).get('median_s')
    for variant, step in steps.items():
        entry = result['variants'][variant]
        entry.update(timing[variant])
        entry['peak_memory_gb'] = common.peak_memory_gb(step, device)
        entry['flops'] = flops.get(variant, flops.get('sparse'))
        entry['graphs_per_s'] = cfg.batch_size / entry['median_s']
        entry['gflops_per_s'] = entry['flops'] / 1e9 / entry['median_s']
        entry['fraction_of_mm'] = entry['gflops_per_s'] / result['mm_gflops']
        entry['time_vs_sparse'] = (None if base is None
                                   else entry['median_s'] / base)
        if cfg.original and not args.quick:
            entry['original_over_ours'] = (cfg.original['seconds']
                                           / entry['median_s'])
            entry['original_over_ours_memory'] = (cfg.original['peak_gb']
                                                  / entry['peak_memory_gb'])
        print(f'{name} {variant}: {common.fmt_time(entry)}, '
              f'{entry["peak_memory_gb"]:.2f} GB', flush=True)

    del steps, fns, model, optimizer
    torch._dynamo.reset()
    return result


def describe(name: str, r: dict) -> str:
    c, s = r['config'], r['size']
    n = c['num_samples']
    lifts = (f'{n} lift sample{"s" * (n > 1)}' if c['group'][:2] == 'SE'
             else 'deterministic lift')
    data = (f'g2 molecules, {s["points_per_graph"]:.1f} atoms per molecule '
            f'(QM9: {common.QM9_MEAN_ATOMS:.0f})' if c['task'] == 'qm9' else
            f'constellations, {s["points_per_graph"]:.1f} of 34 points valid')
    nn = ('' if 'edges_25nn' not in s else
          f'; {s["edges_25nn"]:,} with 25 neighbours')
    return (f'**{name}**: {c["group"]} ({lifts}), width {c["hidden"]}, '
            f'{c["layers"]} layers, {c["heads"]} heads, batch '
            f'{c["batch_size"]}; {data}; {r["parameters"]:,} parameters; '
            f'{s["lifted_elements"]:,} lifted elements, {s["edges"]:,} edges '
            f'(sparse{nn}), {s["dense_pairs"]:,} pairs (dense); `torch.mm` '
            f'{r["mm_gflops"]:.0f} GFLOP/s in the same run.')


def row(name: str, variant: str, e: dict) -> str:
    if 'skipped' in e:
        return f'| {name} | {variant} | {e["skipped"]} |' + ' |' * 7
    ratio = ('-' if 'original_over_ours' not in e else
             f'{e["original_over_ours"]:.2f}x / '
             f'{e["original_over_ours_memory"]:.2f}x')
    return (f'| {name} | {variant} | {e["median_s"]:.3f} ({e["min_s"]:.3f}-'
            f'{e["max_s"]:.3f}) | {e["graphs_per_s"]:.1f} | '
            f'{e["flops"] / 1e9:.1f} | {e["gflops_per_s"]:.0f} | '
            f'{e["fraction_of_mm"]:.0%} | {e["peak_memory_gb"]:.2f} | '
            + ('-' if e['time_vs_sparse'] is None else
               f'{e["time_vs_sparse"]:.2f}') + f' | {ratio} |')


def verdict(ok: bool) -> str:
    return 'met' if ok else 'MISSED'


def targets(configs: Dict[str, dict]) -> List[str]:
    r"""The targets of issue 5, each next to its figure."""
    lines = []
    for name in PAPER_CONFIGS:
        for variant, e in configs.get(name, {}).get('variants', {}).items():
            if 'fraction_of_mm' in e:
                lines.append(f'- {name} {variant}: {e["fraction_of_mm"]:.0%} '
                             f'of `torch.mm` (target >= 50%): '
                             f'{verdict(e["fraction_of_mm"] >= 0.5)}')
    v = configs.get('constellation-se2', {}).get('variants', {})
    if 'median_s' in v.get('sparse', {}) and 'median_s' in v.get('dense', {}):
        speed = v['dense']['median_s'] / v['sparse']['median_s']
        memory = v['dense']['peak_memory_gb'] / v['sparse']['peak_memory_gb']
        lines += [f'- constellation-se2: sparse {speed:.2f}x faster than dense '
                  f'(target >= 4x): {verdict(speed >= 4)}',
                  f'- constellation-se2: sparse peak memory {memory:.2f}x below '
                  f'dense (target >= 5x): {verdict(memory >= 5)}']
    for variant, e in configs.get('qm9-paper', {}).get('variants', {}).items():
        if 'original_over_ours' in e:
            lines.append(f'- qm9-paper {variant}: {e["original_over_ours"]:.2f}'
                         f'x faster than the original\'s 2.39 s (target >= '
                         f'1.3x): {verdict(e["original_over_ours"] >= 1.3)}')
    for variant, e in configs.get('qm9-paper-b100', {}).get(
            'variants', {}).items():
        peak = (e['skipped'] if 'skipped' in e else
                f'peak {e["peak_memory_gb"]:.1f} GB')
        ok = 'skipped' not in e and e['peak_memory_gb'] <= 16
        lines.append(f'- qm9-paper-b100 {variant}: {peak} (target: fits in '
                     f'16 GB): {verdict(ok)}')
    return lines


def main() -> dict:
    parser = common.parser(__doc__)
    parser.add_argument('--configs', nargs='+', choices=list(CONFIGS),
                        default=list(CONFIGS), help='configurations to run')
    parser.add_argument('--memory-budget', type=float, default=16.0,
                        help='GB a step may allocate; larger ones are '
                        'reported as out of memory')
    parser.add_argument('--no-compile', action='store_true',
                        help="leave out the 'sparse+compile' variants")
    args = parser.parse_args()
    if args.quick:
        args.repeats = min(args.repeats, 2)
    device = common.setup(args)
    result = {'command': common.command(), 'machine': common.machine(device),
              'repeats': args.repeats, 'quick': args.quick, 'configs': {}}
    for name in args.configs:
        cfg = quick(CONFIGS[name]) if args.quick else CONFIGS[name]
        result['configs'][name] = run_config(name, cfg, args, device)

    lines = common.header('LieTransformer training steps: sparse, dense, '
                          'compiled', result)
    if args.quick:
        lines += ['**Quick run**: tiny widths and batches; the original\'s '
                  'figures and the targets do not apply.', '']
    lines += [describe(name, r) for name, r in result['configs'].items()]
    lines += ['', '| config | variant | s/step (min-max) | graphs/s | '
              'GFLOP/step | GFLOP/s | of mm | peak GB | time / sparse | '
              'original / ours (time / memory) |', '|---' * 10 + '|']
    for name, r in result['configs'].items():
        original = r['config']['original']
        for variant, e in r['variants'].items():
            lines.append(row(name, variant, e))
        if original is not None and not args.quick:
            lines.append(f'| {name} | *original (earlier measurement)* | '
                         f'{original["seconds"]:.2f} | '
                         f'{r["config"]["batch_size"] / original["seconds"]:.1f}'
                         f' | | | | {original["peak_gb"]:.1f} | | '
                         f'{original["parameters"] / 1e6:.1f} M params |')
    lines += [
        '', 'GFLOP/step: matrix FLOPs (forward, backward, Adam) counted on the '
        'eager variant (the compiled one does the same work; the dense one '
        'also computes its padding). Peak GB: '
        + ('peak allocated CUDA memory' if device.type == 'cuda' else
           'peak RSS of the process during one step, baseline (torch, '
           'parameters, Adam state, inputs) included')
        + '. *Original* rows: the original implementation, measured earlier '
        'on this machine type (DESIGN.md section 4), not in this run: a '
        'different program whose inputs are not recorded there (QM9 '
        'molecules average 18 atoms, these g2 molecules 10 to 14), its QM9 '
        'paper script with 25 neighbours; its parameter counts are shown. '
        'The dense formulation is full attention only (`lift_dense` refuses '
        '`max_num_neighbors`); g2 molecules have at most 14 atoms, so 25 '
        'neighbours keep every pair.', '',
        '## Targets (issue 5)', ''] + targets(result['configs'])
    common.write('models', result, lines, args)
    return result


if __name__ == '__main__':
    main()
