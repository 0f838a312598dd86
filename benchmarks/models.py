r"""Training-step throughput of whole LieTransformer models: the model's
sparse and dense kernels through its one API, and ``torch.compile`` of the
sparse one.

Each configuration builds one :class:`~torch_lie.nn.LieTransformer` (its
``Lift`` with full attention) and one Adam optimiser; its variants are
training steps (lift, forward, loss, backward, Adam step) of that same
model's parameters under other settings, timed interleaved in one process
(:func:`benchmarks.common.interleaved`), median of several steps after
warm-up, each calling the model on the collated point clouds (a
:class:`~torch_geometric.data.Batch`, lifted inside):

- ``sparse``: ``kernel='sparse'``, PyG message passing on the lifted edges
  (full attention within each graph);
- ``sparse-25nn``: the same with ``Lift(max_num_neighbors=25)``, the
  neighbourhoods of the original QM9 script;
- ``sparse+compile``: ``torch.compile`` of the model on
  ``model.lift(batch)``, the lift eager;
- ``dense``: ``kernel='dense'``, batched matrix products over the graphs
  padded to the largest one.

``kernel='auto'``, what users get, is one of ``sparse`` and ``dense``: the
dense kernel where padding at most doubles the pairs and makes at most 2^16
of them (reported per configuration).

Inputs: QM9-sized molecules from ``ase.collections.g2``
(:func:`benchmarks.common.qm9_sized_molecules`, 10 to 14 atoms), with the paper's
15 atom features, standardised random targets and an L1 loss; constellations
from :func:`~torch_lie.datasets.constellation.generate_constellations`
(their valid points, 34 at most) with their 33 sorted-distance features and
the cross entropy of the 4 three-way counting heads. Every step draws fresh
lift samples, as training does.

Also reported: matrix FLOPs of one step of each eager variant
(:func:`benchmarks.common.count_flops`, forward, backward and Adam), the
speed of a plain ``torch.mm`` measured between the steps, peak memory of
one step (:func:`benchmarks.common.peak_memory_gb`; on CPU the process's
peak RSS, baseline included), and the original implementation's times from
its published timings (an earlier measurement of a different program, not part
of this run)::

    python -m benchmarks.models [--quick] [--configs qm9-paper ...]
"""
import copy
import dataclasses
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch, Data

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
    #: The original implementation (its published timings on this machine
    #: type): seconds per step, peak RSS (GB), parameters.
    original: Optional[dict] = None
    #: A paper preset (``LieTransformer.paper``) instead of torch_lie's
    #: default layout with these sizes.
    preset: Optional[str] = None


CONFIGS: Dict[str, Config] = {
    'qm9-paper': Config(
        'qm9', 'SE3', 4, 1504, 6, 8, 8,
        ('sparse', 'sparse-25nn', 'sparse+compile', 'dense'),
        original={'seconds': 2.39, 'peak_gb': 2.3, 'parameters': 55.5e6}),
    # The QM9 paper script's own model (kernel '2232', pointwise head,
    # quaternion pairs; full attention instead of its 25 random neighbours).
    'qm9-paper-exact': Config(
        'qm9', 'SE3-quaternion', 4, 1504, 6, 8, 8, ('sparse', 'dense'),
        original={'seconds': 2.39, 'peak_gb': 2.3, 'parameters': 55.5e6},
        preset='qm9_paper'),
    'qm9-paper-exact-b100': Config(
        'qm9', 'SE3-quaternion', 4, 1504, 6, 8, 100, ('sparse', 'dense'),
        max_repeats=2, warmup=0, preset='qm9_paper'),
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


def quick(cfg: Config) -> Config:
    r"""Tiny sizes of a configuration for a smoke run."""
    return dataclasses.replace(cfg, hidden=32, layers=2, heads=4,
                               batch_size=max(2, cfg.batch_size // 8))


def qm9_inputs(batch_size: int, seed: int = 0) -> Tuple[Batch, Tensor]:
    r""":func:`benchmarks.common.qm9_sized_molecules` with the paper's 15
    atom features (a :class:`~torch_geometric.data.Batch` of point clouds)
    and standard normal targets."""
    data = Batch.from_data_list([
        atoms_to_data(atoms, qm9_features)
        for atoms in common.qm9_sized_molecules(batch_size, seed)])
    y = torch.randn(batch_size, generator=torch.Generator().manual_seed(seed))
    return data, y


def constellation_inputs(batch_size: int,
                         seed: int = 0) -> Tuple[Batch, Tensor]:
    r"""Generated constellations (their valid points only) with the
    reference implementation's 33 sorted-distance features, and their
    counting targets."""
    gen = torch.Generator().manual_seed(seed)
    data = generate_constellations(batch_size, gen, dtype=torch.float32)
    x = constellation_distance_features(data.pos, data.mask)
    return Batch.from_data_list([
        Data(pos=pos[mask], x=features[mask])
        for pos, features, mask in zip(data.pos, x, data.mask)]), data.y


def loss_fn(task: str, out: Tensor, y: Tensor) -> Tensor:
    if task == 'qm9':
        return F.l1_loss(out.view(-1), y)
    return F.cross_entropy(out.view(-1, 3), y.view(-1))


def variant_of(model: LieTransformer, **settings) -> LieTransformer:
    r"""The model with other :obj:`settings` (its :obj:`kernel` or
    :obj:`lift`), sharing its modules and parameters, so that one optimiser
    trains all variants."""
    other = copy.copy(model)  # shallow: the same submodules
    for key, value in settings.items():
        setattr(other, key, value)
    return other


def training_step(cfg: Config, variant: str, model: LieTransformer,
                  optimizer: torch.optim.Optimizer, data: Batch,
                  y: Tensor) -> Callable[[], None]:
    r"""One training step of :obj:`variant` on the point clouds
    :obj:`data`."""
    model = variant_of(model, kernel='dense' if variant == 'dense'
                       else 'sparse')
    if variant == 'sparse-25nn':
        model = variant_of(model, lift=Lift(cfg.group, cfg.num_samples,
                                            max_num_neighbors=25))
    if variant == 'sparse+compile':
        compiled = torch.compile(model)

        def forward() -> Tensor:
            return compiled(model.lift(data))
    else:
        def forward() -> Tensor:
            return model(data)

    def step() -> None:
        loss = loss_fn(cfg.task, forward(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def run_config(name: str, cfg: Config, args,
               device: torch.device) -> dict:
    torch.manual_seed(0)
    make_inputs = qm9_inputs if cfg.task == 'qm9' else constellation_inputs
    data, y = make_inputs(cfg.batch_size)
    data, y = data.to(device), y.to(device)
    sizes = dict(hidden_channels=cfg.hidden, num_layers=cfg.layers,
                 heads=cfg.heads,
                 lift=Lift(cfg.group, num_samples=cfg.num_samples))
    if cfg.preset is not None:
        model = LieTransformer.paper(cfg.preset, **sizes).to(device)
    else:
        model = LieTransformer(data.x.size(1), out_channels=1 if cfg.task ==
                               'qm9' else 12, **sizes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    lifted = model.lift(data)
    edges = lifted.edge_index.size(1)
    largest = int(torch.bincount(lifted.batch).max())
    dense_pairs = cfg.batch_size * largest**2
    size = {'points': data.num_nodes,
            'points_per_graph': data.num_nodes / cfg.batch_size,
            'lifted_elements': lifted.num_nodes, 'edges': edges,
            'dense_pairs': dense_pairs,
            'auto_kernel': ('sparse' if model._dense_layout(lifted) is None
                            else 'dense')}
    if 'sparse-25nn' in cfg.variants:
        lift_25nn = Lift(cfg.group, cfg.num_samples, max_num_neighbors=25)
        size['edges_25nn'] = lift_25nn(data).edge_index.size(1)
    variants = [v for v in cfg.variants
                if not (args.no_compile and v.endswith('compile'))]
    result = {'config': dataclasses.asdict(cfg), 'size': size,
              'parameters': sum(p.numel() for p in model.parameters()),
              'variants': {}}
    print(f'{name}: {result["parameters"]:,} parameters, {size}',
          flush=True)

    steps: Dict[str, Callable[[], None]] = {}
    for variant in variants:
        step = training_step(cfg, variant, model, optimizer, data, y)
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
            f'(sparse{nn}), {s["dense_pairs"]:,} pairs (dense, padded); '
            f'`kernel=\'auto\'` runs the {s["auto_kernel"]} kernel; '
            f'`torch.mm` {r["mm_gflops"]:.0f} GFLOP/s in the same run.')


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
    r"""The targets (issue 12), each next to its figure, for the kernel
    :obj:`kernel='auto'` runs."""
    def auto(name: str) -> Optional[dict]:
        config = configs.get(name)
        if config is None:
            return None
        entry = config['variants'].get(config['size']['auto_kernel'], {})
        return entry if 'median_s' in entry else None

    lines = []
    for name, speed, memory in (('constellation-se2', 6.0, 5.0),
                                ('qm9-paper-exact', 1.5, None)):
        e = auto(name)
        if e is None or 'original_over_ours' not in e:
            continue
        mm = configs[name]['mm_gflops']
        then = common.ORIGINAL_MM_GFLOPS
        calibrated = e['original_over_ours'] * then / mm
        kernel = configs[name]['size']['auto_kernel']
        lines.append(f'- {name} ({kernel}): {e["original_over_ours"]:.2f}x '
                     f'faster than the original, {calibrated:.2f}x '
                     f'calibrated by `torch.mm` ({mm:.0f} GFLOP/s here, '
                     f'{then:.0f} then) (target >= {speed:g}x):'
                     f' {verdict(calibrated >= speed)}')
        if memory is not None:
            ratio = e['original_over_ours_memory']
            lines.append(f'- {name} ({kernel}): {ratio:.2f}x less peak memory '
                         f'than the original (target >= {memory:g}x): '
                         f'{verdict(ratio >= memory)}')
    e = auto('qm9-paper-exact-b100')
    if e is not None:
        lines.append(f'- qm9-paper-exact-b100 ('
                     f'{configs["qm9-paper-exact-b100"]["size"]["auto_kernel"]}'
                     f'): peak {e["peak_memory_gb"]:.2f} GB (target <= 8 GB): '
                     f'{verdict(e["peak_memory_gb"] <= 8)}')
    for name in ('constellation-t2', 'constellation-se2'):
        e = configs.get(name, {}).get('variants', {}).get('sparse+compile', {})
        if 'first_call_s' in e:
            lines.append(f'- {name} sparse+compile: first step '
                         f'{e["first_call_s"]:.1f} s (target <= 60 s): '
                         f'{verdict(e["first_call_s"] <= 60)}; the compiled '
                         f'step takes {e["time_vs_sparse"]:.2f}x the eager '
                         'one')
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

    lines = common.header('LieTransformer training steps: sparse and dense '
                          'kernels, compiled', result)
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
        'on this machine type (its published timings), not in this run: a '
        'different program whose inputs are not recorded there (QM9 '
        'molecules average 18 atoms, these g2 molecules 10 to 14), its QM9 '
        'paper script with 25 neighbours; its parameter counts are shown. '
        'The dense kernel is full attention only (`kernel=\'dense\'` '
        'refuses a lift with `max_num_neighbors`); g2 molecules have at most '
        '14 atoms, so 25 neighbours keep every pair.', '',
        '## Targets', ''] + targets(result['configs'])
    common.write('models', result, lines, args)
    return result


if __name__ == '__main__':
    main()
