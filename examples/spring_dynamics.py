r"""Learning Hamiltonian spring dynamics with a LieTransformer potential.

The task of the LieTransformer paper (Hutchinson et al., 2021, Sec. 5.2), first
used by LieConv: six particles in the plane, coupled by springs, with masses
and spring constants drawn per system
(:class:`torch_lie.datasets.SpringDynamics`). The model is a Hamiltonian

.. math::
    H_\theta(q, p) = \sum_i \frac{|p_i|^2}{2 m_i} + V_\theta(q, [m, k]),

with :math:`V_\theta` a LieTransformer over the particles, invariant to the
chosen group (:class:`~torch_lie.nn.models.dynamics.LiePotential`);
:math:`\dot z = J \nabla H_\theta` is integrated with RK4
(:class:`~torch_lie.nn.models.dynamics.HamiltonianDynamics`) and trained on
the MSE of roll-outs of 5 states. ``--model fc`` trains the non-invariant
"FC" baseline (an MLP vector field), ``--model hfc`` the "HFC" baseline (the
known kinetic term and an MLP potential), both in the reference's form.

Protocol (``--protocol paper``, as in the reference implementation): every
trajectory is cut into non-overlapping chunks of 5 states (4 RK4 steps;
100 states for the long test), the first ``--n-train`` systems of the
training split with one seeded chunk each (``--chunks-per-system 1``), Adam
with a cosine schedule (stepped per Adam step, or per epoch as the reference
with ``--cosine-every epoch``; optionally after a linear warm-up), the
validation MSE after every epoch (on ``min(n_train, --n-val)`` systems), and
the checkpoint with the best validation MSE kept for testing.
``--protocol shared`` is this example's earlier one: chunks of 5 steps
(6 states) sharing their boundary states, and 100 steps; its MSE of the same
predictions is about 1.5x larger. At the end, on the test split: the MSE of
the short and the long roll-outs, the relative drift of
the *true* energy along the predicted 100-step roll-outs, two plots and
``metrics.json`` in ``--out``::

    python examples/spring_dynamics.py --n-train 400 --epochs 200 --compile
    python examples/spring_dynamics.py --model fc --n-train 400 --epochs 200
    python examples/spring_dynamics.py --resume --epochs 300 --out runs/springs

A checkpoint (model, optimiser, scheduler, epoch, best validation MSE, RNG
states) is written atomically after every epoch; ``--resume`` continues from
it (with more ``--epochs``, the cosine schedule is stretched to the new
length), and a finished or interrupted run in ``--out`` is only replaced with
``--overwrite``.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from torch_lie.datasets import SpringDynamics, spring_hamiltonian
from torch_lie.groups import group_resolver
from torch_lie.nn.models.dynamics import (
    HamiltonianDynamics,
    LiePotential,
    MLPDynamics,
    MLPPotential,
    SeparableHamiltonian,
)
from torch_lie.training import Checkpointer, save_json, warmup_cosine
from torch_lie.transforms import Lift
from torch_lie.utils import check_device

#: Default width and depth per model (LieTransformer: the paper's spring
#: configuration; FC / HFC: the LieConv baselines).
PROTOCOLS = ('paper', 'shared')
DEFAULTS = {'lie': (160, 5), 'fc': (256, 5), 'hfc': (256, 5)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add('--model', choices=('lie', 'fc', 'hfc'), default='lie')
    add('--group', default='T2',
        help="group of the LieTransformer (a group_resolver name acting on "
        "the plane: T2, SE2, SE2-C4, ...)")
    add('--num-samples', type=int, default=1,
        help='lifted elements per particle for random lifts (SE2)')
    add('--hidden', type=int, default=None,
        help='width (default: 160 for lie, 256 for fc/hfc)')
    add('--layers', type=int, default=None,
        help='LieTransformer blocks / MLP linear layers (default: 5 / 5)')
    add('--heads', type=int, default=8)
    add('--kernel-dim', type=int, default=16)
    add('--paper-layout', action='store_true',
        help="the original's layout (Swish after the location MLPs and the "
        "block MLPs, its output head; LiePotential.paper)")
    add('--attention', choices=('dot_product', 'softmax', 'norm_exp'),
        default='dot_product')
    add('--n-train', type=int, default=3000,
        help='training systems (the first n of the training split)')
    add('--protocol', choices=PROTOCOLS, default='paper',
        help='paper: non-overlapping chunks of 5 states (100 for the long '
        'test), as the reference; shared: chunks of 5 steps (6 states) and '
        '100 steps sharing their boundary states')
    add('--chunks-per-system', type=int, default=1,
        help='chunks per training system (1: the paper protocol)')
    add('--train-systems', type=int, default=3000,
        help='systems generated for the training split')
    add('--n-val', type=int, default=2000,
        help='validation systems (at most n-train of them are used)')
    add('--n-test', type=int, default=2000, help='test systems')
    add('--n-test-long', type=int, default=None,
        help='test systems of the long roll-outs (the first of the test '
        'split; default: --n-test)')
    add('--epochs', type=int, default=200)
    add('--batch-size', type=int, default=25,
        help='the paper: 100; 25 takes 4x the Adam steps per epoch at about '
        'the same cost and gave 4.3x lower test MSE at n-train 400')
    add('--eval-batch-size', type=int, default=500)
    add('--lr', type=float, default=1e-3)
    add('--warmup', type=float, default=0.0,
        help='fraction of the training steps with a linear warm-up')
    add('--cosine-every', choices=('step', 'epoch'), default='step',
        help='step the cosine schedule after every Adam step, or once per '
        'epoch (the reference)')
    add('--seed', type=int, default=0, help='seed of the model and training')
    add('--data-seed', type=int, default=0)
    add('--root', default='data/springs', help='data directory')
    add('--out', default='runs/springs', help='output directory')
    add('--resume', action='store_true',
        help='continue from the checkpoint in --out')
    add('--overwrite', action='store_true',
        help='start over, replacing the run in --out')
    add('--compile', action='store_true',
        help='torch.compile the vector field for training (fixed batch '
        'shapes; ~1.7x faster steps for the paper model after ~100 s of '
        'compilation)')
    add('--threads', type=int, default=None)
    add('--device', default='cpu')
    add('--plot-systems', type=int, default=3)
    add('--no-progress', action='store_true', help='no progress bars')
    add('--summary', nargs='+', metavar='DIR',
        help='only print a table of the metrics.json files in these output '
        'directories')
    args = parser.parse_args(argv)
    if args.summary:
        return args
    try:
        check_args(args)
    except ValueError as error:
        parser.error(str(error))
    hidden, layers = DEFAULTS[args.model]
    args.hidden = hidden if args.hidden is None else args.hidden
    args.layers = layers if args.layers is None else args.layers
    return args


def check_args(args: argparse.Namespace):
    check_device(args.device)
    positive = ['num_samples', 'hidden', 'layers', 'heads', 'kernel_dim',
                'n_train', 'chunks_per_system', 'train_systems', 'n_val',
                'n_test', 'n_test_long', 'epochs', 'batch_size', 'eval_batch_size',
                'plot_systems', 'threads']
    for name in positive:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"'--{name.replace('_', '-')}' must be >= 1 "
                             f"(got {value})")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise ValueError(f"'--lr' must be a positive number (got {args.lr})")
    if not 0 <= args.warmup < 1:
        raise ValueError(f"'--warmup' must be in [0, 1) (got {args.warmup})")
    if args.n_train > args.train_systems:
        raise ValueError(f"'--n-train' ({args.n_train}) exceeds the "
                         f"training split ('--train-systems' = "
                         f"{args.train_systems})")
    if args.model == 'lie':
        # ValueError for unknown names and groups not acting on the plane.
        group_resolver(args.group, space_dim=2)
        hidden = args.hidden or DEFAULTS['lie'][0]
        if hidden % args.heads:
            raise ValueError(f"'--hidden' ({hidden}) must be divisible by "
                             f"'--heads' ({args.heads})")


# Data ######################################################################


def chunks(protocol: str, states: int) -> dict:
    r"""The chunks of :obj:`states` states (paper) or steps (shared)."""
    if protocol == 'paper':
        return dict(chunk_len=states - 1, chunk_stride=states)
    return dict(chunk_len=states)


def load_data(args):
    common = dict(root=args.root, seed=args.data_seed, dtype=torch.float32,
                  log=not args.no_progress)
    short, long = chunks(args.protocol, 5), chunks(args.protocol, 100)
    train = SpringDynamics(split='train', n_train=args.n_train,
                           num_systems=args.train_systems,
                           chunks_per_system=args.chunks_per_system,
                           **short, **common)
    # As in the reference, at most n_train validation systems.
    val = SpringDynamics(split='val', num_systems=min(args.n_val,
                                                      args.n_train),
                         chunks_per_system=1, **short, **common)
    test = SpringDynamics(split='test', num_systems=args.n_test,
                          chunks_per_system=1, **short, **common)
    test_long = SpringDynamics(split='test',
                               num_systems=args.n_test_long or args.n_test,
                               chunks_per_system=1, **long, **common)
    return train, val, test, test_long


# Model #####################################################################


def build_model(args, num_particles: int = 6) -> torch.nn.Module:
    if args.model == 'lie':
        sizes = dict(lift=Lift(args.group, args.num_samples),
                     hidden_channels=args.hidden, num_layers=args.layers,
                     heads=args.heads, kernel_dim=args.kernel_dim,
                     attention=args.attention)
        potential = (LiePotential.paper(**sizes) if args.paper_layout
                     else LiePotential(2, **sizes))
        return HamiltonianDynamics(SeparableHamiltonian(potential),
                                   compile=args.compile)
    if args.model == 'hfc':
        return HamiltonianDynamics(SeparableHamiltonian(
            MLPPotential(num_particles, 2, 2, args.hidden, args.layers)),
            compile=args.compile)
    return MLPDynamics(num_particles, 2, 2, args.hidden, args.layers)


# Training and evaluation ###################################################


def batch_to(batch, device):
    return [t.to(device) for t in batch]


def rollout_mse(model, loader, device, per_step: bool = False):
    r"""The MSE of roll-outs from the chunks' initial states (overall, and
    per time step if :obj:`per_step`), with the predictions."""
    model.eval()
    total, count, steps, preds = 0.0, 0, 0.0, []
    with torch.no_grad(), model.eager():
        for batch in loader:
            z0, ts, sys_params, z = batch_to(batch, device)
            pred = model.rollout(z0, ts[0], sys_params)
            err = (pred - z).pow(2)
            total += err.sum().item()
            count += err.numel()
            if per_step:
                steps = steps + err.flatten(2).mean(2).sum(0).double().cpu()
                preds.append(pred.cpu())
    mse = total / count
    if not per_step:
        return mse
    return mse, steps / len(loader.dataset), torch.cat(preds)


def energy_drift(pred: torch.Tensor, sys_params: torch.Tensor):
    r"""Relative drift :math:`|H(z_t) - H(z_0)| / |H(z_0)|` of the true
    energy along trajectories :obj:`[B, T, 2, N, 2]`, per time step (mean
    over systems)."""
    energy = spring_hamiltonian(pred.double(),
                                sys_params.double()[:, None])  # [B, T]
    drift = (energy - energy[:, :1]).abs() / energy[:, :1].abs()
    return drift.mean(0)


def train(args, model, train_set, val_set, device, log):
    loader_gen = torch.Generator().manual_seed(args.seed)
    # Fixed shapes for torch.compile: drop the incomplete last batch.
    train_loader = DataLoader(train_set, shuffle=True, generator=loader_gen,
                              batch_size=min(args.batch_size, len(train_set)),
                              drop_last=args.compile)
    val_loader = DataLoader(val_set, batch_size=args.eval_batch_size)
    per_step = args.cosine_every == 'step'
    total = args.epochs * (len(train_loader) if per_step else 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = warmup_cosine(optimizer, total, round(args.warmup * total))
    ckpt = Checkpointer(args.out, recipe(args), resume=args.resume,
                        overwrite=args.overwrite)
    state = ckpt.restore(model, optimizer, scheduler, loader_gen)
    start_epoch = state.get('epoch', 0) + 1
    best_val, best_epoch = state.get('best_val', math.inf), state.get(
        'best_epoch', 0)
    history, train_time = state.get('history', []), state.get(
        'train_time', 0.0)
    if state:
        log(f'resumed from epoch {state["epoch"]} of {ckpt.path} (best val '
            f'MSE {best_val:.3e} at epoch {best_epoch})')

    for epoch in range(start_epoch, args.epochs + 1):
        model.train()
        start = time.perf_counter()
        total, count = 0.0, 0
        bar = tqdm(train_loader, desc=f'epoch {epoch}/{args.epochs}',
                   leave=False, disable=args.no_progress, file=sys.stdout)
        for batch in bar:
            z0, ts, sys_params, z = batch_to(batch, device)
            loss = (model.rollout(z0, ts[0], sys_params) - z).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if per_step:
                scheduler.step()
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f'non-finite training loss at epoch '
                                         f'{epoch}; try a smaller --lr')
            total += loss.item() * z0.size(0)
            count += z0.size(0)
            bar.set_postfix(mse=f'{loss.item():.2e}')
        if not per_step:
            scheduler.step()
        train_time += time.perf_counter() - start
        val_mse = rollout_mse(model, val_loader, device)
        improved = val_mse < best_val
        if improved:
            best_val, best_epoch = val_mse, epoch
            ckpt.save_best(model)
        lr = optimizer.param_groups[0]['lr']
        history.append({'epoch': epoch, 'train_mse': total / count,
                        'val_mse': val_mse, 'lr': lr, 'time': train_time})
        log(f'epoch {epoch:4d}/{args.epochs}  train {total / count:.3e}  '
            f'val {val_mse:.3e}{" *" if improved else "  "}  lr {lr:.2e}  '
            f'{train_time:7.1f} s')
        ckpt.save(model, optimizer, scheduler, loader_gen, epoch=epoch,
                  best_val=best_val, best_epoch=best_epoch, history=history,
                  train_time=train_time)
    ckpt.load_best(model)
    return {'best_val_mse': best_val, 'best_epoch': best_epoch,
            'history': history, 'train_time_s': train_time,
            'start_epoch': start_epoch,
            'resumed_from_epoch': state.get('epoch'),
            'steps_per_epoch': len(train_loader),
            'batch_size': train_loader.batch_size}


def recipe(args) -> dict:
    r"""What a run learns from: its model and training settings, without
    the number of epochs (a resumed run may extend it)."""
    keys = ['model', 'hidden', 'layers', 'protocol', 'n_train',
            'chunks_per_system', 'train_systems', 'n_val', 'batch_size', 'lr',
            'warmup', 'cosine_every', 'seed', 'data_seed']
    if args.model == 'lie':
        keys += ['group', 'num_samples', 'heads', 'kernel_dim', 'attention',
                 'paper_layout']
    return {key: getattr(args, key, None) for key in keys}


# Plots #####################################################################


def plot_trajectories(path, pred, true, num_systems, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    num = min(num_systems, pred.size(0))
    fig, axes = plt.subplots(1, num, figsize=(4 * num, 4), squeeze=False)
    colors = plt.cm.tab10.colors
    for s, ax in enumerate(axes[0]):
        for i in range(true.size(3)):  # particles
            c = colors[i % len(colors)]
            ax.plot(true[s, :, 0, i, 0], true[s, :, 0, i, 1], color=c, lw=1.5,
                    alpha=0.6)
            ax.plot(pred[s, :, 0, i, 0], pred[s, :, 0, i, 1], color=c, lw=1,
                    ls='--')
            ax.plot(true[s, 0, 0, i, 0], true[s, 0, 0, i, 1], 'o', color=c,
                    ms=4)
        # Framed on the true paths: diverging predictions leave the frame.
        lo, hi = true[s, :, 0].amin((0, 1)), true[s, :, 0].amax((0, 1))
        half = 0.6 * float((hi - lo).max()) + 1e-3
        mid = (lo + hi) / 2
        ax.set_xlim(float(mid[0]) - half, float(mid[0]) + half)
        ax.set_ylim(float(mid[1]) - half, float(mid[1]) + half)
        ax.set_aspect('equal')
        ax.set_title(f'test system {s}')
    axes[0][0].plot([], [], color='gray', lw=1.5, label='true')
    axes[0][0].plot([], [], color='gray', lw=1, ls='--', label='predicted')
    axes[0][0].legend(loc='best', fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_error(path, per_step, dt, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    steps = torch.arange(1, per_step.numel())
    ax.plot(steps, per_step[1:], color='crimson')
    ax.set_yscale('log')
    ax.set_xlabel(f'roll-out step (dt = {dt:.4f})')
    ax.set_ylabel('test MSE (mean over systems and coordinates)')
    ax.set_title(title)
    ax.grid(True, which='both', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# Main ######################################################################


def summary(dirs) -> list:
    r"""Prints a table of the runs in the output directories :obj:`dirs`
    and returns their metrics."""
    runs = []
    for directory in dirs:
        with open(os.path.join(directory, 'metrics.json')) as f:
            runs.append(json.load(f))
    print(f"\n{'model':<20}{'params':>9}{'n_train':>9}{'epochs':>8}"
          f"{'test MSE 5-step':>17}{'100-step':>11}{'energy drift':>14}"
          f"{'train':>8}")
    for m in runs:
        print(f"{m['model']:<20}{m['parameters']:>9,}{m['n_train']:>9}"
              f"{m['epochs']:>8}{m['test_mse_5']:>17.2e}"
              f"{m['test_mse_100']:>11.2e}{m['energy_drift_100']:>14.2e}"
              f"{m['train_time_s']:>7.0f}s")
    print('\nPlots (trajectories.png, rollout_error.png) and metrics.json '
          'in: ' + ', '.join(f'{d}/' for d in dirs))
    return runs


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.summary:
        return {'runs': summary(args.summary)}
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    device = torch.device(args.device)

    def log(msg):
        print(msg, flush=True)

    wall = time.perf_counter()
    train_set, val_set, test_set, test_long = load_data(args)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model = build_model(args).to(device)
    params = sum(p.numel() for p in model.parameters())
    name = (f'LieTransformer-{args.group}' if args.model == 'lie'
            else args.model.upper())
    log(f'{name}: {params:,} parameters; {len(train_set)} training chunks '
        f'of {args.n_train} systems, {len(val_set)} validation, '
        f'{len(test_set)} test systems')

    result = train(args, model, train_set, val_set, device, log)

    # Tested with the best weights (train() loads them).
    torch.manual_seed(args.seed)  # random lifts: reproducible evaluation
    start = time.perf_counter()
    test_mse = rollout_mse(
        model, DataLoader(test_set, batch_size=args.eval_batch_size), device)
    long_mse, per_step, pred = rollout_mse(
        model, DataLoader(test_long, batch_size=args.eval_batch_size), device,
        per_step=True)
    eval_time = time.perf_counter() - start
    true = torch.stack([test_long[i].z for i in range(len(test_long))])
    sys_params = test_long.sys_params
    drift = energy_drift(pred, sys_params)
    true_drift = energy_drift(true, sys_params)

    traj_png = os.path.join(args.out, 'trajectories.png')
    error_png = os.path.join(args.out, 'rollout_error.png')
    plot_trajectories(traj_png, pred, true, args.plot_systems,
                      f'{name}, n_train={args.n_train}: 100-step test '
                      f'roll-outs')
    dt = float(test_long.ts[1] - test_long.ts[0])
    plot_error(error_png, per_step, dt,
               f'{name}, n_train={args.n_train}: 100-step roll-outs')

    metrics = {
        'model': name,
        'args': vars(args),
        'parameters': params,
        'n_train': args.n_train,
        'train_chunks': len(train_set),
        'epochs': args.epochs,
        'steps': result['steps_per_epoch'] * (args.epochs),
        'test_mse_5': test_mse,
        'test_mse_100': long_mse,
        'energy_drift_100': float(drift[-1]),
        'energy_drift_100_max': float(drift.max()),
        'true_energy_drift_100': float(true_drift[-1]),
        'rollout_mse_per_step': per_step.tolist(),
        'train_time_s': result['train_time_s'],
        'eval_time_s': eval_time,
        'wall_time_s': time.perf_counter() - wall,
        'plots': {'trajectories': traj_png, 'rollout_error': error_png},
        'device': str(device),
        'threads': torch.get_num_threads(),
        'torch': torch.__version__,
    }
    metrics.update({k: v for k, v in result.items()
                    if k not in ('train_time_s', )})
    save_json(metrics, os.path.join(args.out, 'metrics.json'))
    log(f'{name}: test MSE 5-step {test_mse:.3e}, 100-step {long_mse:.3e}, '
        f'energy drift {float(drift[-1]):.2e} (true dynamics '
        f'{float(true_drift[-1]):.1e}); best val {result["best_val_mse"]:.3e}'
        f' at epoch {result["best_epoch"]}; train {result["train_time_s"]:.0f}'
        f' s; results in {args.out}/')
    return metrics


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError) as e:  # the message says the fix
        sys.exit(f'error: {e}')
