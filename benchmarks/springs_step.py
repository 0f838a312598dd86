r"""Training-step time of the paper's spring-dynamics model (T(2)
LieTransformer potential: width 160, 5 layers, 8 heads, kernel dim 16,
dot-product attention; batch 100; a 5-step RK4 roll-out, backward, Adam).

Three implementations of the same model (same parameters) are timed
interleaved in one process, median of several steps after warm-up:

- ``sparse``: the general path, :class:`~torch_lie.nn.LieTransformer` on
  lifted graphs (PyG message passing: gathers and scatters per edge);
- ``dense``: the full-attention fast path (``forward_dense``: batched
  matrix products), what :class:`~torch_lie.nn.models.LiePotential` uses;
- ``dense+compile``: the same with ``HamiltonianDynamics(compile=True)``.

It also reports the matrix FLOPs of one step, counted with the FLOP formulas
of :mod:`torch.utils.flop_counter` (its ``FlopCounterMode`` itself cannot run
here: its module hooks fail under ``autograd.grad``), the GFLOP/s of a plain
``torch.mm`` measured in the same run, peak memory of each variant (in a
fresh subprocess each), and the parameter count.

    python benchmarks/springs_step.py [--quick] [--out benchmarks/results]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from torch_lie.nn.models import HamiltonianDynamics, LiePotential, SeparableHamiltonian

ORIGINAL = {'seconds': 2.69, 'peak_rss_gb': 3.6, 'parameters': 841_641}
VARIANTS = ('sparse', 'dense', 'dense+compile')


class SparsePotential(torch.nn.Module):
    r"""The same potential through the general sparse path."""
    def __init__(self, potential: LiePotential):
        super().__init__()
        self.potential = potential

    def forward(self, q, sys_params):
        B, N, d = q.shape
        batch = torch.arange(B).repeat_interleave(N)
        lifted = self.potential.lift.lift(q.reshape(B * N, d), batch)
        x = sys_params.reshape(B * N, -1)[lifted.point_index]
        return self.potential.transformer(x, lifted.edge_index,
                                          lifted.edge_attr, lifted.batch,
                                          num_graphs=B).view(B)


class MatmulFlops(TorchDispatchMode):
    r"""Counts FLOPs of the ops that :mod:`torch.utils.flop_counter` knows
    (matrix products, convolutions, attention)."""
    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.flops += count(*args, **kwargs, out_val=out)
        return out


def build(variant: str, args):
    torch.manual_seed(0)
    potential = LiePotential(2, 'T2', hidden_channels=args.hidden,
                             num_layers=args.layers, heads=args.heads,
                             kernel_dim=args.kernel_dim,
                             attention='dot_product')
    module = SparsePotential(potential) if variant == 'sparse' else potential
    dynamics = HamiltonianDynamics(SeparableHamiltonian(module),
                                   compile=variant == 'dense+compile')
    optimizer = torch.optim.Adam(dynamics.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    B, N = args.batch_size, 6
    z0 = 0.5 * torch.randn(B, 2, N, 2, generator=gen)
    sys_params = torch.rand(B, N, 2, generator=gen) * 3 + 0.1
    ts = torch.linspace(0, 5 * 5 / 499, 6)
    target = torch.randn(B, 6, 2, N, 2, generator=gen)

    def step():
        loss = (dynamics.rollout(z0, ts, sys_params) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return dynamics, step


def mm_gflops(size: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / (time.perf_counter() - t) / 1e9


def peak_memory(variant: str, argv) -> float:
    r"""Peak RSS (GB) of a fresh process doing two steps of one variant."""
    out = subprocess.run(
        [sys.executable, __file__, '--memory-of', variant, *argv],
        check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='batch 20, 2 layers, fewer repeats')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', default='benchmarks/results')
    parser.add_argument('--memory-of', choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.hidden, args.layers, args.heads, args.kernel_dim = 160, 5, 8, 16
    args.batch_size = 100
    if args.quick:
        args.layers, args.batch_size, args.repeats = 2, 20, 3
    config_argv = ['--quick'] if args.quick else []

    if args.memory_of:
        _, step = build(args.memory_of, args)
        step()
        step()
        # VmHWM, not ru_maxrss: the latter keeps the parent's size across
        # fork + exec.
        with open('/proc/self/status') as f:
            hwm = next(line for line in f if line.startswith('VmHWM'))
        print(int(hwm.split()[1]) / 1e6)
        return None

    steps, params = {}, None
    for variant in VARIANTS:
        dynamics, steps[variant] = build(variant, args)
        params = sum(p.numel() for p in dynamics.parameters())
        t = time.perf_counter()
        steps[variant]()  # warm-up (compiles the compiled variant)
        print(f'{variant}: warm-up {time.perf_counter() - t:.1f} s', flush=True)
        steps[variant]()

    times = {v: [] for v in VARIANTS}
    gflops = []
    for _ in range(args.repeats):  # interleaved
        gflops.append(mm_gflops())
        for variant in VARIANTS:
            t = time.perf_counter()
            steps[variant]()
            times[variant].append(time.perf_counter() - t)
    mm = statistics.median(gflops)

    counter = MatmulFlops()
    with counter:
        steps['dense']()
    flops = counter.flops

    result = {
        'config': {'hidden': args.hidden, 'layers': args.layers,
                   'heads': args.heads, 'kernel_dim': args.kernel_dim,
                   'batch_size': args.batch_size, 'rollout_steps': 5,
                   'parameters': params},
        'machine': {'cpus': os.cpu_count(), 'threads': torch.get_num_threads(),
                    'torch': torch.__version__,
                    'processor': platform.processor() or platform.machine()},
        'command': 'python benchmarks/springs_step.py ' + ' '.join(argv or []),
        'mm_gflops': mm, 'step_gflop': flops / 1e9, 'original': ORIGINAL,
        'variants': {},
    }
    for variant in VARIANTS:
        med = statistics.median(times[variant])
        result['variants'][variant] = {
            'median_s': med, 'min_s': min(times[variant]),
            'max_s': max(times[variant]),
            'speedup_vs_original': (None if args.quick
                                    else ORIGINAL['seconds'] / med),
            'speedup_vs_sparse': statistics.median(times['sparse']) / med,
            'achieved_gflops': flops / 1e9 / med,
            'fraction_of_mm': flops / 1e9 / med / mm,
            'peak_rss_gb': peak_memory(variant, config_argv),
        }

    name = 'springs_step_quick' if args.quick else 'springs_step'
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, name + '.json'), 'w') as f:
        json.dump(result, f, indent=2)
    lines = [
        f'# Spring-dynamics training step ({"quick" if args.quick else "paper"}'
        ' configuration)', '',
        f'Command: `{result["command"].strip()}`. Machine: {os.cpu_count()} '
        f'CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads. '
        f'Model: width {args.hidden}, {args.layers} layers, {args.heads} heads, '
        f'kernel dim {args.kernel_dim}, batch {args.batch_size}, 5-step RK4 '
        f'roll-out + backward + Adam; {params:,} parameters (original: '
        f'{ORIGINAL["parameters"]:,}). Median of {args.repeats} interleaved '
        f'steps after warm-up; peak RSS of a fresh process per variant.', '',
        f'Matrix FLOPs per step: {flops / 1e9:.1f} GFLOP. Plain `torch.mm` '
        f'(1024^2) in the same run: {mm:.0f} GFLOP/s.', '',
        '| variant | median s/step (min-max) | vs original 2.69 s | vs sparse '
        '| GFLOP/s | fraction of mm | peak RSS GB |',
        '|---|---|---|---|---|---|---|',
    ]
    for variant, r in result['variants'].items():
        lines.append(
            f'| {variant} | {r["median_s"]:.2f} ({r["min_s"]:.2f}-'
            f'{r["max_s"]:.2f}) | '
            + ('n/a' if args.quick else f'{r["speedup_vs_original"]:.2f}x')
            + ' | '
            f'{r["speedup_vs_sparse"]:.2f}x | {r["achieved_gflops"]:.0f} | '
            f'{r["fraction_of_mm"]:.0%} | {r["peak_rss_gb"]:.2f} |')
    lines += ['', 'The original implementation (DESIGN.md section 4: 2.69 s, '
              '3.6 GB on this machine type) cannot run here (torch 1.6); its '
              'figure comes from an earlier measurement, not this run.']
    with open(os.path.join(args.out, name + '.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return result


if __name__ == '__main__':
    main(sys.argv[1:])
