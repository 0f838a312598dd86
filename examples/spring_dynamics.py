r"""Learning Hamiltonian spring dynamics with a LieTransformer potential.

The task of the LieTransformer paper's Sec. 5.2
(:class:`~torch_lie.datasets.SpringDynamics`): six particles in the plane
coupled by springs. The model, :math:`H = \sum_i |p_i|^2 / 2 m_i +
V_\theta(q, [m, k])` with :math:`V_\theta` invariant to ``--group``
(:class:`~torch_lie.nn.models.LiePotential`), is integrated with RK4 and
trained on the MSE of short roll-outs (``--model fc``/``hfc``: the
baselines); the best validation epoch is tested on short and long roll-outs,
with plots and ``metrics.json`` in ``--out``::

    python examples/spring_dynamics.py --n-train 400 --epochs 200
    python examples/spring_dynamics.py --model fc --n-train 400 --out runs/fc
    python examples/spring_dynamics.py --summary runs/springs runs/fc
"""
import argparse
import os
import time

PARSER = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
add = PARSER.add_argument
add('--model', choices=('lie', 'fc', 'hfc'), default='lie')
add('--group', default='T2', help='group of the LieTransformer (default: T2)')
add('--num-samples', type=int, default=1, help='lifted elements per particle')
add('--hidden', type=int, help='width (default: 160 for lie, 256 otherwise)')
add('--layers', type=int, default=5, help='blocks or linear layers')
add('--heads', type=int, default=8)
add('--kernel-dim', type=int, default=16)
add('--paper-layout', action='store_true', help='LiePotential.paper')
add('--attention', choices=('dot_product', 'softmax', 'norm_exp'),
    default='dot_product')
add('--n-train', type=int, default=3000, help='training systems')
add('--protocol', choices=('paper', 'shared'), default='paper')
add('--chunks-per-system', type=int, default=1)
add('--train-systems', type=int, default=3000)
add('--n-val', type=int, default=2000)
add('--n-test', type=int, default=2000)
add('--n-test-long', type=int, help='systems of the long test (default: all)')
add('--epochs', type=int, default=200)
add('--batch-size', type=int, default=25, help='(the paper: 100)')
add('--max-pairs', type=int, default=1 << 14,
    help='lifted pairs per evaluation pass')
add('--lr', type=float, default=1e-3)
add('--warmup', type=float, default=0.0, help='warm-up fraction of the steps')
add('--augment', nargs='+', choices=('rotate', 'reverse', 'scale'), default=[],
    help='random rotations and reflections, time reversals, scalings of '
         'training chunks')
add('--max-scale', type=float,
    help='largest factor of --augment scale (default: 2)')
add('--cosine-every', choices=('step', 'epoch'), default='step', help='paper: epoch')
add('--seed', type=int, default=0)
add('--data-seed', type=int, default=0)
add('--root', default='data/springs')
add('--out', default='runs/springs')
add('--resume', action='store_true', help='continue the run in --out')
add('--overwrite', action='store_true', help='replace the run in --out')
add('--compile', action='store_true', help='torch.compile (needs a C++ compiler)')
add('--threads', type=int, default=1, help='torch threads (default: 1)')
add('--device', default='cpu')
add('--plot-systems', type=int, default=3)
add('--no-progress', action='store_true')
add('--summary', nargs='+', metavar='DIR', help='tabulate and plot finished runs')
add('--pretrained', metavar='NAME', help='evaluate springs-t2 or a file')
add('--save-pretrained', metavar='PATH', help='save it for from_pretrained')

if __name__ == '__main__':  # --help and usage errors before slow imports
    PARSER.parse_args()

import torch
from torch.utils.data import DataLoader

from torch_lie.datasets import (
    SpringDynamics,
    spring_energy_drift,
    spring_symmetries,
)
from torch_lie.groups import group_resolver
from torch_lie.nn.models import (
    HamiltonianDynamics,
    LieTransformer,
    MLPDynamics,
    MLPPotential,
    SeparableHamiltonian,
)
from torch_lie.pretrained import BUILDERS, from_pretrained, save_pretrained
from torch_lie.training import (
    Checkpointer,
    check_counts,
    check_out,
    exit_on_error,
    fit,
    load_runs,
    markdown_table,
    save_json,
    warmup_cosine,
)
from torch_lie.utils import check_compiler, check_device
from torch_lie.visualization import plot_rollout_error, plot_trajectories

#: What a resumed run must share with its checkpoint.
RECIPE = ('model', 'hidden', 'layers', 'protocol', 'n_train',
          'chunks_per_system', 'train_systems', 'n_val', 'batch_size', 'lr',
          'warmup', 'cosine_every', 'seed', 'data_seed', 'group',
          'num_samples', 'heads', 'kernel_dim', 'attention', 'paper_layout',
          'augment', 'max_scale')


def parse_args(argv=None) -> argparse.Namespace:
    args = PARSER.parse_args(argv)
    args.hidden = args.hidden or (160 if args.model == 'lie' else 256)
    if args.summary:
        return args
    check_counts(PARSER, args, ('num_samples', 'hidden', 'layers', 'heads',
                                'kernel_dim', 'n_train', 'chunks_per_system',
                                'train_systems', 'n_val', 'n_test', 'epochs',
                                'batch_size', 'max_pairs', 'threads'))
    check_out(PARSER, args.out)
    if 'scale' in args.augment:
        if args.max_scale is None:
            args.max_scale = 2.0
        if not args.max_scale >= 1:
            PARSER.error('--max-scale must be at least 1')
    elif args.max_scale is not None:
        PARSER.error('--max-scale needs --augment scale')
    if not args.lr > 0 or not 0 <= args.warmup < 1:
        PARSER.error('--lr must be positive and --warmup in [0, 1)')
    if args.n_train > args.train_systems:
        PARSER.error(f'--n-train ({args.n_train}) exceeds the training split '
                     f'(--train-systems {args.train_systems})')
    try:
        check_device(args.device)
        group_resolver(args.group, space_dim=2)  # acts on the plane
        if args.compile:
            check_compiler()
    except ValueError as error:
        PARSER.error(str(error))
    if args.save_pretrained and (args.model != 'lie' or args.pretrained):
        PARSER.error('--save-pretrained saves a LieTransformer trained here')
    if args.model == 'lie' and args.hidden % args.heads:
        PARSER.error(f'--hidden ({args.hidden}) must be divisible by --heads')
    return args


def lie_kwargs(args) -> dict:
    # The arguments of torch_lie.pretrained's 'springs' builder.
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


def eval_loader(dataset, model, args) -> DataLoader:
    # Systems per pass: at most --max-pairs lifted pairs of full attention.
    lift = next((m.lift.lift_size for m in model.modules()
                 if isinstance(m, LieTransformer)), 1)
    points = dataset.num_particles * lift
    return DataLoader(dataset, max(1, args.max_pairs // points**2))


def train(args, model, data) -> dict:
    gen = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(data['train'], min(args.batch_size, len(data['train'])),
                        shuffle=True, generator=gen, drop_last=args.compile)
    val = eval_loader(data['val'], model, args)
    total = args.epochs * (len(loader) if args.cosine_every == 'step' else 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = warmup_cosine(optimizer, total, round(args.warmup * total))
    ckpt = Checkpointer(args.out, {k: getattr(args, k) for k in RECIPE},
                        resume=args.resume, overwrite=args.overwrite)

    def step(batch):
        z0, ts, sys_params, z = (t.to(args.device) for t in batch)
        if args.augment:
            z = spring_symmetries(z, 'rotate' in args.augment,
                                  'reverse' in args.augment,
                                  args.max_scale or 1.0, generator=gen)
            z0 = z[:, 0]
        loss = (model.rollout(z0, ts[0], sys_params) - z).pow(2).mean()
        loss.backward()
        return z0.size(0), {'mse': loss.item() * z0.size(0)}

    def evaluate():
        return {'val_mse': float(model.rollout_errors(val)[0].mean())}

    result = fit(model, loader, step, optimizer, scheduler, args.epochs, ckpt,
                 evaluate=evaluate, monitor='val_mse', generator=gen,
                 schedule_per=args.cosine_every, progress=not args.no_progress)
    return {**result, 'steps': args.epochs * len(loader),
            'batch_size': loader.batch_size}


def summary(args) -> str:
    runs = load_runs(args.summary)
    table = markdown_table(
        ['run', 'model', 'params', 'n_train', 'epochs', 'test MSE (5)',
         'test MSE (100)', 'energy drift'],
        [[f'`{run}`', m['model'], f"{m['parameters']:,}", m['n_train'],
          m['epochs'], f"{m['test_mse_5']:.2e}", f"{m['test_mse_100']:.2e}",
          f"{m['energy_drift_100']:.1e}"] for run, m in runs.items()])
    print(table)
    os.makedirs(args.out, exist_ok=True)
    errors = {f"{m['model']} ({run})": torch.load(f'{run}/rollout_errors.pt')
              for run, m in runs.items()}
    plot_rollout_error(f'{args.out}/rollout_comparison.png', errors,
                       dt=runs[args.summary[0]]['dt'], train_steps=4)
    return table


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.summary:
        return {'table': summary(args)}
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    data = SpringDynamics.paper_splits(
        args.root, args.n_train, args.train_systems, args.n_val, args.n_test,
        args.n_test_long, args.chunks_per_system, args.protocol,
        seed=args.data_seed, dtype=torch.float32, log=not args.no_progress)
    torch.manual_seed(args.seed)
    model = build_model(args).to(args.device)
    name = (f'pretrained {args.pretrained}' if args.pretrained else
            f'LieTransformer-{args.group}' if args.model == 'lie' else
            args.model.upper())
    params = sum(p.numel() for p in model.parameters())
    print(f'{name}: {params:,} parameters', flush=True)
    result = ({'pretrained': args.pretrained} if args.pretrained else
              train(args, model, data))

    torch.manual_seed(args.seed)  # random lifts: a reproducible evaluation
    start = time.perf_counter()
    test = eval_loader(data['test'], model, args)
    short = model.rollout_errors(test)[0]
    # How the error spreads over the systems: a few can carry the mean.
    levels = (0.5, 0.9, 0.99, 1.0)
    spread = short.mean(1).quantile(torch.tensor(levels, dtype=short.dtype),
                                    interpolation='lower')
    long = data['test_long']
    errors, pred = model.rollout_errors(eval_loader(long, model, args))
    true = torch.stack([long[i].z for i in range(len(long))])
    dt = float(long.ts[1] - long.ts[0])
    drift = [float(spring_energy_drift(z, long.sys_params).mean())
             for z in (pred, true)]
    title = f'{name}, n_train={args.n_train}: {true.size(1)}-state roll-outs'
    torch.save(errors, f'{args.out}/rollout_errors.pt')
    torch.save(short, f'{args.out}/short_errors.pt')  # [systems, states]
    plot_trajectories(f'{args.out}/trajectories.png', pred, true,
                      args.plot_systems, title)
    plot_rollout_error(f'{args.out}/rollout_error.png', {name: errors}, dt,
                       train_steps=data['train'].chunk_len, title=title)
    metrics = {
        'model': name, 'args': vars(args), 'parameters': params, 'dt': dt,
        'n_train': args.n_train, 'epochs': args.epochs,
        'test_mse_5': float(short.mean()), 'test_mse_100': float(errors.mean()),
        # Without the systems whose roll-outs blew up, and how many did.
        'test_mse_5_finite': float(short[short.isfinite().all(1)].mean()),
        'test_mse_5_quantiles': dict(zip(map(str, levels), spread.tolist())),
        'diverged_5': int((~short[:, -1].isfinite()).sum()),
        'energy_drift_100': drift[0], 'true_energy_drift_100': drift[1],
        'rollout_mse_per_step': errors.mean(0).tolist(),
        'diverged_100': int((~errors[:, -1].isfinite()).sum()),
        'eval_time_s': time.perf_counter() - start,
        'eval_batch_size': test.batch_size, 'threads': torch.get_num_threads(),
        **result}
    save_json(metrics, f'{args.out}/metrics.json')
    if args.save_pretrained:
        save_pretrained(model, args.save_pretrained, 'springs', lie_kwargs(args),
                        {k: metrics[k] for k in ('n_train', 'test_mse_5',
                                                 'test_mse_100', 'energy_drift_100')})
    if metrics['diverged_5']:
        print(f"{metrics['diverged_5']} of {len(short)} short test roll-outs "
              f"blew up; MSE of the others {metrics['test_mse_5_finite']:.3e}")
    print(f"{name}: test MSE {metrics['test_mse_5']:.3e} (short), "
          f"{metrics['test_mse_100']:.3e} (long), energy drift "
          f"{metrics['energy_drift_100']:.2e}; results in {args.out}/")
    return metrics


if __name__ == '__main__':
    exit_on_error(main)
