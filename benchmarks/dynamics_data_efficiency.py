r"""Data efficiency on the spring dynamics task (LieTransformer paper, Fig. 4).

Trains the T(2) LieTransformer (the paper's model, ``LiePotential.paper``:
width 160, 5 layers, 8 heads, kernel dim 16, 'dot_product' attention, the
reference's default and the command of its README) and the FC / HFC
baselines (the reference's forms) for
several numbers of training systems and seeds, on the published protocol
(chunks of 5 states, 2000 test and ``min(n_train, 2000)`` validation systems,
batch ``min(100, n_train)``, 200 epochs, Adam 1e-3 with a cosine schedule
stepped per epoch, the test MSE at the best validation epoch), each run by
``examples/spring_dynamics.py`` in a subprocess of its own, and writes
``dynamics_data_efficiency.{json,md,png}`` (the median and quartiles over
seeds, beside the curves of the paper's figure) to ``--results``::

    python benchmarks/dynamics_data_efficiency.py --n-train 10 100 400 1000 \
        --notes benchmarks/dynamics_data_efficiency_notes.md

Finished runs (``metrics.json`` in ``--runs/<model>_n<n>_s<seed>``) are
reused, and an interrupted run is resumed from its checkpoint, so the study
can be restarted; ``--report-only`` rewrites the results from the finished
runs.
"""
import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, 'examples', 'spring_dynamics.py')
NAME = 'dynamics_data_efficiency'

#: The curves of the paper's Fig. 4 (5-step test MSE, read from its pixels).
#: Green and orange are the LieTransformer and LieConv (named by a sister
#: figure of the same repository); red and blue are not named anywhere, so
#: they are drawn by colour only.
PAPER = {
    'LieTr-T2 (paper, green)': {10: 7.45e-4, 100: 2.44e-5, 400: 8.54e-6,
                                1000: 5.74e-6},
    'LieConv-T2 (paper, orange)': {10: 3.45e-3, 100: 1.58e-4, 400: 2.39e-5,
                                   1000: 3.27e-5},
    'unnamed curve (paper, blue)': {10: 2.25e-2, 100: 2.13e-3, 400: 6.11e-4,
                                    1000: 3.89e-4},
    'unnamed curve (paper, red)': {10: 1.30e-1, 100: 4.23e-2, 400: 9.24e-3,
                                   1000: 2.00e-3},
}
PAPER_COLORS = ('green', 'darkorange', 'dodgerblue', 'crimson')
LABELS = {'lie': 'LieTr-T2 (ours)', 'fc': 'FC (ours)', 'hfc': 'HFC (ours)'}


def parse_mapping(items, name):
    mapping = {}
    for item in items or []:
        try:
            n, value = item.split(':')
            mapping[int(n)] = int(value)
        except ValueError:
            raise ValueError(
                f"'{name}' takes N:VALUE pairs (got {item!r})") from None
    return mapping


def run_args(model, n, seed, epochs, args):
    argv = ['--model', model, '--n-train', str(n), '--epochs', str(epochs),
            '--seed', str(seed), '--root', args.root, '--no-progress',
            '--protocol', 'paper', '--cosine-every', args.cosine_every,
            '--n-test-long', str(args.n_test_long)]
    if model == 'lie':
        argv += ['--group', 'T2', '--attention', args.attention]
        if args.paper_layout:
            argv += ['--paper-layout']
        if args.warmup:
            argv += ['--warmup', str(args.warmup)]
        if args.compile_from is not None and n >= args.compile_from:
            argv += ['--compile']
    argv += ['--batch-size', str(args.batch_size), '--lr', str(args.lr)]
    return argv + list(args.extra)


#: Arguments that do not change what a run learns.
NOT_RECIPE = {'out', 'threads', 'no_progress', 'compile', 'root',
              'n_test_long', 'max_pairs'}


def argument_differences(saved: dict, argv: list) -> list:
    r"""The arguments in :obj:`argv` (as given to the example) that differ
    from the :obj:`saved` arguments of a run."""
    diffs, i = [], 0
    while i < len(argv):
        key = argv[i][2:].replace('-', '_')
        takes_value = i + 1 < len(argv) and not argv[i + 1].startswith('--')
        value = argv[i + 1] if takes_value else True
        i += 2 if takes_value else 1
        if key in NOT_RECIPE:
            continue
        old = saved.get(key)
        same = (old is True) if value is True else (
            old is not None and type(old)(value) == old)
        if not same:
            diffs.append(f'{key}={old!r} (requested {value!r})')
    return diffs


def run_dir(args, model, n, seed):
    return os.path.join(args.runs, f'{model}_n{n}_s{seed}')


def run_one(model, n, seed, epochs, args):
    out = run_dir(args, model, n, seed)
    argv = run_args(model, n, seed, epochs, args) + ['--out', out]
    tag = f'[{model} n={n} seed={seed}]'
    metrics_path = os.path.join(out, 'metrics.json')
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            metrics = json.load(f)
        diffs = argument_differences(metrics['args'], argv)
        if diffs:
            raise ValueError(f"'{out}' was made with {', '.join(diffs)}: use "
                             f"another --runs")
        if metrics['epochs'] == epochs:
            print(f'{tag} done before, reusing {metrics_path}', flush=True)
            return metrics
    if os.path.exists(os.path.join(out, 'checkpoint.pt')):
        argv.append('--resume')
    command = [sys.executable, EXAMPLE] + argv
    print(f'{tag} {shlex.join(command)}', flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    print(f'{tag} finished in {time.perf_counter() - start:.0f} s',
          flush=True)
    with open(metrics_path) as f:
        return json.load(f)


def quartiles(values):
    r"""Median and quartiles (the first and third; the values themselves
    for fewer than 3)."""
    values = sorted(values)
    if len(values) < 3:
        return statistics.median(values), values[0], values[-1]
    q1, q2, q3 = statistics.quantiles(values, n=4, method='inclusive')
    return q2, q1, q3


def collect(args):
    r"""One row per model and n_train: the median and quartiles over the
    finished seeds."""
    rows = []
    for n in args.n_train:
        for model in args.models:
            runs = []
            for seed in args.seeds:
                path = os.path.join(run_dir(args, model, n, seed),
                                    'metrics.json')
                if os.path.exists(path):
                    with open(path) as f:
                        runs.append(json.load(f))
            if not runs:
                continue
            row = {'model': model, 'n_train': n, 'label': LABELS[model],
                   'seeds': [m['args']['seed'] for m in runs],
                   'parameters': runs[0]['parameters'],
                   'epochs': runs[0]['epochs'], 'steps': runs[0]['steps'],
                   'batch_size': runs[0]['batch_size'],
                   'train_time_s': sum(m['train_time_s'] for m in runs),
                   'eval_time_s': sum(m['eval_time_s'] for m in runs),
                   'args': runs[0]['args']}
            for m in runs:  # runs from before these entries diverged none
                m.setdefault('test_mse_5_finite', m['test_mse_5'])
                m.setdefault('diverged_5', 0)
            row['diverged_5'] = [m['diverged_5'] for m in runs]
            for key in ('test_mse_5', 'test_mse_5_finite', 'test_mse_100',
                        'energy_drift_100', 'best_val_mse'):
                values = [m[key] for m in runs]
                row[key] = dict(zip(('median', 'q1', 'q3'),
                                    quartiles(values)), values=values)
            row['true_energy_drift_100'] = runs[0]['true_energy_drift_100']
            rows.append(row)
    return rows


def fmt(x):
    return f'{x:.2e}' if x is not None else '–'


def fmt_q(stat):
    return (f"{stat['median']:.2e} [{stat['q1']:.1e}, {stat['q3']:.1e}]"
            if len(stat['values']) > 1 else fmt(stat['median']))


def augmentations(rows) -> list:
    # The runs' --augment values, which the table's columns do not show.
    return sorted({' '.join(r['args'].get('augment') or []) for r in rows}
                  - {''})


def write_results(rows, args, command):
    os.makedirs(args.results, exist_ok=True)
    compute = sum(r['train_time_s'] + r['eval_time_s'] for r in rows)
    machine = (f'{platform.machine()} CPU, {os.cpu_count()} cores '
               f'(shared), {platform.system()}; Python '
               f'{platform.python_version()}, torch {args.torch_version}')
    data = {'command': command, 'machine': machine,
            'compute_time_s': compute, 'paper_figure_test_mse_5': {
                k: {str(n): v for n, v in d.items()}
                for k, d in PAPER.items()}, 'rows': rows}
    with open(os.path.join(args.results, f'{NAME}.json'), 'w') as f:
        json.dump(data, f, indent=1)

    lie = 'the paper\'s model (`LiePotential.paper`)' if args.paper_layout \
        else 'the default `LiePotential` layout'
    lines = [
        '# Spring dynamics: data efficiency',
        '',
        'Test MSE of 5-state roll-outs (4 RK4 steps; 2000 test systems, one '
        'chunk each) at the epoch of the best validation MSE '
        '(`min(n_train, 2000)` validation systems), median [first quartile, '
        'third quartile] over the seeds listed, for the T(2) LieTransformer '
        f'({lie}, width 160, 5 layers, 8 heads, kernel dim 16, '
        f'\'{args.attention}\' attention) and the FC / HFC baselines in the '
        'reference\'s forms, trained on the first `n_train` systems with one '
        'chunk each, with Adam (the batch and learning rate of each row; '
        'the batch is at most n_train) and a cosine schedule '
        f'stepped per {args.cosine_every}. Then the MSE of 100-state '
        f'roll-outs and the relative drift of the true energy at their end '
        f'(the first {args.n_test_long} test systems). The paper columns are '
        'read from the pixels of the paper\'s Fig. 4 (green: LieTr-T2).',
        '',
        *(f"Training chunks augmented by the systems' symmetries (`--augment "
          f"{k}`, `torch_lie.datasets.spring_symmetries`).\n"
          for k in augmentations(rows)),
        'A model trained on few systems can blow up on a test system it has '
        'not seen (non-finite states within 4 steps): that system\'s error '
        'is infinite and so is the mean. The column "without blown-up '
        'systems" leaves them out; "blown up" counts them per seed (of 2000).',
        '',
        '| n_train | model | params | seeds | epochs (steps) | batch, lr | '
        'test MSE '
        '5-state | paper LieTr-T2 | ratio to paper | without blown-up '
        'systems | blown up | test MSE 100-state | energy drift (100) | '
        'train time (all seeds) |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    green = PAPER['LieTr-T2 (paper, green)']
    for r in rows:
        n = r['n_train']
        ratio = (f"{r['test_mse_5']['median'] / green[n]:.1f}x"
                 if n in green and r['model'] == 'lie' else '–')
        lines.append(
            f"| {n} | {r['label']} | {r['parameters']:,} | "
            f"{len(r['seeds'])} | {r['epochs']} ({r['steps']}) | "
            f"{r['batch_size']}, {r['args']['lr']:g} | "
            f"{fmt_q(r['test_mse_5'])} | {fmt(green.get(n))} | {ratio} | "
            f"{fmt_q(r['test_mse_5_finite'])} | "
            f"{' / '.join(map(str, r['diverged_5']))} | "
            f"{fmt_q(r['test_mse_100'])} | "
            f"{fmt_q(r['energy_drift_100'])} | "
            f"{r['train_time_s'] / 60:.1f} min |")
    true_drift = {r['true_energy_drift_100'] for r in rows}
    lines += [
        '',
        f'Energy drift of the ground truth itself (RK4 with the data\'s step) '
        f'over the same 100 states: {fmt(max(true_drift)) if rows else "–"}.',
        '',
        '## Setup',
        '',
        f'- Command: `{command}`',
        f'- Machine: {machine}; one thread per run; other jobs shared the '
        f'two cores during parts of the study, so times are upper bounds.',
        f'- Training and evaluation time of the runs, summed: '
        f'{compute / 60:.0f} min.',
        '',
    ]
    with open(os.path.join(args.results, f'{NAME}.md'), 'w') as f:
        f.write('\n'.join(lines) + args.notes)
    plot(rows, os.path.join(args.results, f'{NAME}.png'))


def plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.6, 4.6))
    for (label, d), color in zip(PAPER.items(), PAPER_COLORS):
        ax.plot(list(d), list(d.values()), ls='--', color=color, alpha=0.5,
                lw=1.2, label=label)
    styles = {'lie': ('green', 'o'), 'fc': ('black', 's'),
              'hfc': ('purple', '^')}
    for model, (color, marker) in styles.items():
        pts = sorted((r['n_train'], r['test_mse_5_finite']) for r in rows
                     if r['model'] == model)
        if not pts:
            continue
        n = [p[0] for p in pts]
        med = [p[1]['median'] for p in pts]
        err = [[m - p[1]['q1'] for m, p in zip(med, pts)],
               [p[1]['q3'] - m for m, p in zip(med, pts)]]
        ax.errorbar(n, med, yerr=err, marker=marker, color=color, capsize=3,
                    label=LABELS[model] + ', median and quartiles')
    ax.plot([], [], ' ', label='ours: test systems whose roll-outs blew up '
            'left out (see the table)')
    for kind in augmentations(rows):
        ax.plot([], [], ' ', label=f'ours: trained with --augment {kind}')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('training systems (n_train)')
    ax.set_ylabel('test MSE, 5-state roll-outs')
    ax.set_title('Spring dynamics: data efficiency (dashed: paper, Fig. 4)')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--n-train', type=int, nargs='+',
                        default=[10, 100, 400, 1000])
    parser.add_argument('--models', nargs='+', default=['fc', 'hfc', 'lie'],
                        choices=['lie', 'fc', 'hfc'])
    parser.add_argument('--seeds', type=int, nargs='+',
                        default=[0, 1, 2, 3, 4])
    parser.add_argument('--lie-seeds', nargs='*', default=[],
                        help='N:SEEDS, fewer seeds of the LieTransformer at '
                        'large n_train (the first SEEDS of --seeds)')
    parser.add_argument('--epochs', type=int, default=200)
    parser.add_argument('--batch-size', type=int, default=100,
                        help='of every model (min(batch, n_train) is used)')
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--warmup', type=float, default=0.0)
    parser.add_argument('--cosine-every', choices=('step', 'epoch'),
                        default='epoch')
    parser.add_argument('--attention', default='dot_product',
                        choices=('norm_exp', 'dot_product', 'softmax'))
    parser.add_argument('--default-layout', dest='paper_layout',
                        action='store_false',
                        help='the default LiePotential instead of the '
                        'paper\'s layout')
    parser.add_argument('--n-test-long', type=int, default=200)
    parser.add_argument('--compile-from', type=int, default=None,
                        metavar='N', help='compile the LieTransformer from '
                        'this n_train on (needs a C++ compiler)')
    parser.add_argument('--root', default='data/springs')
    parser.add_argument('--runs', default='runs/dynamics_data_efficiency')
    parser.add_argument('--results',
                        default=os.path.join(ROOT, 'runs', 'benchmarks'),
                        help='where the table, plot and JSON go (the '
                        'committed ones: benchmarks/results)')
    parser.add_argument('--notes', default=None,
                        help='a Markdown file appended to the results')
    parser.add_argument('--report-only', action='store_true')
    parser.add_argument('extra', nargs='*',
                        help='more arguments of the example (after --)')
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    lie_seeds = parse_mapping(args.lie_seeds, '--lie-seeds')
    import torch
    args.torch_version = torch.__version__
    notes = ''
    if args.notes:
        with open(args.notes) as f:
            notes = '\n' + f.read()
    args.notes = notes

    command = 'python ' + ' '.join(
        shlex.quote(a) for a in [os.path.relpath(__file__, ROOT)] +
        args.argv)
    path = os.path.join(args.results, f'{NAME}.json')
    if args.report_only and os.path.exists(path):
        with open(path) as f:  # the command that ran the study, if one did
            stored = json.load(f)['command']
        if '--report-only' not in shlex.split(stored):
            command = stored
    if not args.report_only:
        # Cheap runs first: the baselines, then the LieTransformer by n_train,
        # every seed of one n_train before the next.
        for model in sorted(args.models, key=lambda m: m == 'lie'):
            for n in args.n_train:
                seeds = args.seeds
                if model == 'lie' and n in lie_seeds:
                    seeds = seeds[:lie_seeds[n]]
                for seed in seeds:
                    run_one(model, n, seed, args.epochs, args)
                    write_results(collect(args), args, command)
    rows = collect(args)
    write_results(rows, args, command)
    for r in rows:
        print(f"{r['label']:>16} n={r['n_train']:5d} ({len(r['seeds'])} "
              f"seeds): 5-state {fmt_q(r['test_mse_5'])}")
    return rows


if __name__ == '__main__':
    main()
