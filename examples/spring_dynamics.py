r"""Learning Hamiltonian spring dynamics with a LieTransformer potential.

The task of the LieTransformer paper (Sec. 5.2), first used by LieConv: six
particles in the plane coupled by springs, masses and spring constants drawn
per system (:class:`~torch_lie.datasets.SpringDynamics`). The model is a
Hamiltonian :math:`H(q, p) = \sum_i |p_i|^2 / 2 m_i + V_\theta(q, [m, k])`,
:math:`V_\theta` a LieTransformer invariant to ``--group``
(:class:`~torch_lie.nn.models.LiePotential`), integrated with RK4 and trained
on the MSE of short roll-outs. ``--model fc`` and ``--model hfc`` train the
FC and HFC baselines in the reference's forms.

``--protocol paper`` (default) is the reference's: non-overlapping chunks of
5 states (4 RK4 steps; 100 states for the long test), one seeded chunk per
training system, ``min(n_train, --n-val)`` validation systems, the weights of
the best validation epoch tested; ``shared`` is this example's earlier one
(chunks of 5 and 100 steps). A checkpoint after every epoch; ``--resume``
continues a run (more ``--epochs`` stretch the cosine schedule),
``--overwrite`` replaces it. At the end: test MSE of the short and long
roll-outs, the drift of the true energy along the predicted long roll-outs,
``trajectories.png``, ``rollout_error.png`` and ``metrics.json`` in
``--out``::

    python examples/spring_dynamics.py --n-train 400 --epochs 200
    python examples/spring_dynamics.py --model fc --n-train 400 --out runs/fc
    python examples/spring_dynamics.py --summary runs/springs runs/fc
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

PARSER = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
add = PARSER.add_argument
add('--model', choices=('lie', 'fc', 'hfc'), default='lie')
add('--group', default='T2', help='group of the LieTransformer (default: T2)')
add('--num-samples', type=int, default=1,
    help='lifted elements per particle for random lifts (default: 1)')
add('--hidden', type=int, help='width (default: 160 for lie, 256 otherwise)')
add('--layers', type=int, default=5, help='blocks or linear layers')
add('--heads', type=int, default=8)
add('--kernel-dim', type=int, default=16)
add('--paper-layout', action='store_true',
    help="the reference's layout (LiePotential.paper)")
add('--attention', choices=('dot_product', 'softmax', 'norm_exp'),
    default='dot_product')
add('--n-train', type=int, default=3000, help='training systems')
add('--protocol', choices=('paper', 'shared'), default='paper')
add('--chunks-per-system', type=int, default=1)
add('--train-systems', type=int, default=3000)
add('--n-val', type=int, default=2000)
add('--n-test', type=int, default=2000)
add('--n-test-long', type=int, help='systems of the long test (default: '
    'all --n-test)')
add('--epochs', type=int, default=200)
add('--batch-size', type=int, default=25, help='(the paper: 100)')
add('--eval-batch-size', type=int, default=500)
add('--lr', type=float, default=1e-3)
add('--warmup', type=float, default=0.0,
    help='fraction of the steps with a linear warm-up')
add('--cosine-every', choices=('step', 'epoch'), default='step',
    help='step the cosine schedule per Adam step or per epoch (the paper)')
add('--seed', type=int, default=0)
add('--data-seed', type=int, default=0)
add('--root', default='data/springs')
add('--out', default='runs/springs')
add('--resume', action='store_true', help='continue the run in --out')
add('--overwrite', action='store_true', help='replace the run in --out')
add('--compile', action='store_true',
    help='torch.compile the training (needs a C++ compiler)')
add('--threads', type=int, default=1, help='torch threads (default: 1)')
add('--device', default='cpu')
add('--plot-systems', type=int, default=3)
add('--no-progress', action='store_true')
add('--summary', nargs='+', metavar='DIR', help='print a table of finished '
    'runs, draw their roll-out errors on one axis (in --out), and exit')
add('--pretrained', metavar='NAME', help='evaluate a pretrained model (e.g. '
    'springs-t2) instead of training one')
add('--save-pretrained', metavar='PATH',
    help='write the trained LieTransformer for from_pretrained')

if __name__ == '__main__':  # --help and usage errors before slow imports
    PARSER.parse_args()

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from torch_lie.datasets import SpringDynamics, spring_hamiltonian
from torch_lie.groups import group_resolver
from torch_lie.nn.models import (
    HamiltonianDynamics,
    MLPDynamics,
    MLPPotential,
    SeparableHamiltonian,
)
from torch_lie.pretrained import BUILDERS, from_pretrained, save_pretrained
from torch_lie.training import (
    Checkpointer,
    markdown_table,
    save_json,
    warmup_cosine,
)
from torch_lie.utils import check_device
from torch_lie.visualization import (
    plot_rollout_error,
    plot_trajectories,
)

#: What a resumed run must share with its checkpoint.
RECIPE = ('model', 'hidden', 'layers', 'protocol', 'n_train',
          'chunks_per_system', 'train_systems', 'n_val', 'batch_size', 'lr',
          'warmup', 'cosine_every', 'seed', 'data_seed', 'group',
          'num_samples', 'heads', 'kernel_dim', 'attention', 'paper_layout')


def parse_args(argv=None) -> argparse.Namespace:
    args = PARSER.parse_args(argv)
    args.hidden = args.hidden or (160 if args.model == 'lie' else 256)
    if args.summary:
        return args
    for name in ('num_samples', 'hidden', 'layers', 'heads', 'kernel_dim',
                 'n_train', 'chunks_per_system', 'train_systems', 'n_val',
                 'n_test', 'epochs', 'batch_size', 'eval_batch_size',
                 'threads'):
        if getattr(args, name) < 1:
            PARSER.error(f"--{name.replace('_', '-')} must be >= 1")
    if not args.lr > 0 or not 0 <= args.warmup < 1:
        PARSER.error('--lr must be positive and --warmup in [0, 1)')
    if args.n_train > args.train_systems:
        PARSER.error(f'--n-train ({args.n_train}) exceeds the training split '
                     f'(--train-systems {args.train_systems})')
    try:
        check_device(args.device)
        group_resolver(args.group, space_dim=2)  # acts on the plane
    except ValueError as error:
        PARSER.error(str(error))
    if args.compile and not any(map(shutil.which, ('c++', 'g++', 'clang++'))):
        PARSER.error('--compile needs a C++ compiler (c++, g++ or clang++) on '
                     'the PATH: install one, or train without --compile')
    if args.save_pretrained and (args.model != 'lie' or args.pretrained):
        PARSER.error('--save-pretrained saves a LieTransformer trained here')
    if args.model == 'lie' and args.hidden % args.heads:
        PARSER.error(f'--hidden ({args.hidden}) must be divisible by --heads '
                     f'({args.heads})')
    return args


def load_data(args):
    def split(name, states, chunks_per_system=1, **kwargs):
        # The paper's chunks of `states` states, or the earlier ones of steps.
        chunks = (dict(chunk_len=states - 1, chunk_stride=states)
                  if args.protocol == 'paper' else dict(chunk_len=states))
        return SpringDynamics(args.root, split=name, seed=args.data_seed,
                              dtype=torch.float32, log=not args.no_progress,
                              chunks_per_system=chunks_per_system, **chunks,
                              **kwargs)

    return (split('train', 5, args.chunks_per_system, n_train=args.n_train,
                  num_systems=args.train_systems),
            split('val', 5, num_systems=min(args.n_val, args.n_train)),
            split('test', 5, num_systems=args.n_test),
            split('test', 100, num_systems=args.n_test_long or args.n_test))


def lie_kwargs(args) -> dict:
    r"""The LieTransformer potential's arguments (those of the 'springs'
    builder of :mod:`torch_lie.pretrained`)."""
    return dict(group=args.group, num_samples=args.num_samples,
                paper_layout=args.paper_layout, hidden_channels=args.hidden,
                num_layers=args.layers, heads=args.heads,
                kernel_dim=args.kernel_dim, attention=args.attention)


def build_model(args) -> torch.nn.Module:
    if args.pretrained:
        return from_pretrained(args.pretrained)
    if args.model == 'fc':
        return MLPDynamics(6, 2, 2, args.hidden, args.layers)
    if args.model == 'lie':
        return BUILDERS['springs'](**lie_kwargs(args), compile=args.compile)
    return HamiltonianDynamics(SeparableHamiltonian(
        MLPPotential(6, 2, 2, args.hidden, args.layers)), compile=args.compile)


@torch.no_grad()
def rollout_errors(model, dataset, args):
    r"""The squared errors :obj:`[B, T]` of roll-outs from the chunks'
    initial states (mean over coordinates; infinite once a roll-out blew
    up), and the predictions."""
    model.eval()
    errors, preds = [], []
    with model.eager():
        for batch in DataLoader(dataset, batch_size=args.eval_batch_size):
            z0, ts, sys_params, z = (t.to(args.device) for t in batch)
            pred = model.rollout(z0, ts[0], sys_params)
            errors.append((pred - z).pow(2).flatten(2).mean(2).cpu())
            preds.append(pred.cpu())
    # A roll-out that blew up has no finite error.
    return torch.cat(errors).nan_to_num(torch.inf), torch.cat(preds)


def energy_drift(z, sys_params):
    r"""Relative drift of the true energy at the end of trajectories
    :obj:`[B, T, 2, N, 2]` (mean over systems; infinite if one blew up)."""
    finite = z.flatten(1).isfinite().all(1)
    drift = torch.full((z.size(0), ), torch.inf, dtype=torch.float64)
    energy = spring_hamiltonian(z[finite].double(),
                                sys_params[finite].double()[:, None])
    drift[finite] = ((energy[:, -1] - energy[:, 0]) / energy[:, 0]).abs()
    return float(drift.mean())


def train(args, model, train_set, val_set, log) -> dict:
    gen = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(train_set, batch_size=min(args.batch_size,
                                                  len(train_set)),
                        shuffle=True, generator=gen, drop_last=args.compile)
    per_step = args.cosine_every == 'step'
    total = args.epochs * (len(loader) if per_step else 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = warmup_cosine(optimizer, total, round(args.warmup * total))
    ckpt = Checkpointer(args.out, {k: getattr(args, k) for k in RECIPE},
                        resume=args.resume, overwrite=args.overwrite)
    state = ckpt.restore(model, optimizer, scheduler, gen)
    best = {'val_mse': math.inf, 'epoch': 0, **state.get('best', {})}
    history = state.get('history', [])
    if state:
        log(f'resumed from epoch {state["epoch"]} of {ckpt.path}')
    for epoch in range(state.get('epoch', 0) + 1, args.epochs + 1):
        model.train()
        start, total = time.perf_counter(), 0.0
        for batch in tqdm(loader, desc=f'epoch {epoch}/{args.epochs}',
                          leave=False, disable=args.no_progress):
            z0, ts, sys_params, z = (t.to(args.device) for t in batch)
            loss = (model.rollout(z0, ts[0], sys_params) - z).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if per_step:
                scheduler.step()
            total += loss.item() * z0.size(0)
        if not per_step:
            scheduler.step()
        if not math.isfinite(total):
            raise FloatingPointError(f'non-finite loss at epoch {epoch}; try '
                                     f'a smaller --lr')
        val_mse = float(rollout_errors(model, val_set, args)[0].mean())
        if val_mse < best['val_mse']:
            best = {'val_mse': val_mse, 'epoch': epoch}
            ckpt.save_best(model)
        history.append({'epoch': epoch, 'train_mse': total / len(train_set),
                        'val_mse': val_mse,
                        'lr': optimizer.param_groups[0]['lr'],
                        'seconds': time.perf_counter() - start})
        log(f'epoch {epoch:4d}/{args.epochs}  train {total / len(train_set):.3e}'
            f'  val {val_mse:.3e}{" *" if best["epoch"] == epoch else ""}')
        ckpt.save(model, optimizer, scheduler, gen, epoch=epoch, best=best,
                  history=history)
    ckpt.load_best(model)
    return {'best_val_mse': best['val_mse'], 'best_epoch': best['epoch'],
            'history': history, 'resumed_from_epoch': state.get('epoch'),
            'steps': args.epochs * len(loader), 'batch_size': loader.batch_size,
            'train_time_s': sum(h['seconds'] for h in history)}


def summary(args) -> str:
    runs = {}
    for run in args.summary:
        with open(f'{run}/metrics.json') as f:
            runs[run] = json.load(f)
    table = markdown_table(
        ['run', 'model', 'params', 'n_train', 'epochs', 'test MSE (5)',
         'test MSE (100)', 'energy drift'],
        [[f'`{run}`', m['model'], f"{m['parameters']:,}", m['n_train'],
          m['epochs'], f"{m['test_mse_5']:.2e}", f"{m['test_mse_100']:.2e}",
          f"{m['energy_drift_100']:.1e}"] for run, m in runs.items()])
    print(table)
    os.makedirs(args.out, exist_ok=True)
    plot_rollout_error(f'{args.out}/rollout_comparison.png',
                       {f"{m['model']} ({run})": torch.load(
                           f'{run}/rollout_errors.pt') for run, m in
                        runs.items()}, dt=runs[args.summary[0]]['dt'],
                       train_steps=4)
    return table


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.summary:
        return {'table': summary(args)}
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    train_set, val_set, test_set, test_long = load_data(args)
    torch.manual_seed(args.seed)
    model = build_model(args).to(args.device)
    name = (f'pretrained {args.pretrained}' if args.pretrained else
            f'LieTransformer-{args.group}' if args.model == 'lie' else
            args.model.upper())
    params = sum(p.numel() for p in model.parameters())
    print(f'{name}: {params:,} parameters', flush=True)
    result = ({'pretrained': args.pretrained} if args.pretrained else
              train(args, model, train_set, val_set,
                    lambda msg: print(msg, flush=True)))

    torch.manual_seed(args.seed)  # random lifts: a reproducible evaluation
    start = time.perf_counter()
    short = rollout_errors(model, test_set, args)[0]
    errors, pred = rollout_errors(model, test_long, args)
    true = torch.stack([test_long[i].z for i in range(len(test_long))])
    dt = float(test_long.ts[1] - test_long.ts[0])
    title = f'{name}, n_train={args.n_train}: {true.size(1)}-state roll-outs'
    torch.save(errors, f'{args.out}/rollout_errors.pt')
    plot_trajectories(f'{args.out}/trajectories.png', pred, true,
                      args.plot_systems, title)
    plot_rollout_error(f'{args.out}/rollout_error.png', {name: errors}, dt,
                       train_steps=train_set.chunk_len, title=title)
    metrics = {
        'model': name, 'args': vars(args), 'parameters': params,
        'n_train': args.n_train, 'epochs': args.epochs, 'dt': dt,
        'test_mse_5': float(short.mean()), 'test_mse_100': float(errors.mean()),
        # Without the systems whose roll-outs blew up, and how many did.
        'test_mse_5_finite': float(short[short.isfinite().all(1)].mean()),
        'diverged_5': int((~short[:, -1].isfinite()).sum()),
        'energy_drift_100': energy_drift(pred, test_long.sys_params),
        'true_energy_drift_100': energy_drift(true, test_long.sys_params),
        'rollout_mse_per_step': errors.mean(0).tolist(),
        'diverged_100': int((~errors[:, -1].isfinite()).sum()),
        'eval_time_s': time.perf_counter() - start,
        'threads': torch.get_num_threads(), **result}
    save_json(metrics, f'{args.out}/metrics.json')
    if args.save_pretrained:
        save_pretrained(model, args.save_pretrained, 'springs', lie_kwargs(args),
                        'python examples/spring_dynamics.py ' +
                        ' '.join(sys.argv[1:] if argv is None else argv),
                        {k: metrics[k] for k in ('n_train', 'test_mse_5',
                                                 'test_mse_100',
                                                 'energy_drift_100')})
    if metrics['diverged_5']:
        print(f"{metrics['diverged_5']} of {len(short)} short test roll-outs "
              f"blew up; MSE of the others {metrics['test_mse_5_finite']:.3e}")
    print(f"{name}: test MSE {metrics['test_mse_5']:.3e} (short), "
          f"{metrics['test_mse_100']:.3e} (long), energy drift "
          f"{metrics['energy_drift_100']:.2e}; results in {args.out}/")
    return metrics


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # names the fix
        sys.exit(f'error: {error}')
