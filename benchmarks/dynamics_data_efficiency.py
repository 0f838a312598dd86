r"""Data efficiency on the spring dynamics task (LieTransformer paper, Fig. 4).

Trains the T(2) LieTransformer (the paper's configuration: width 160, 5
layers, 8 heads, kernel dim 16, dot-product attention, Adam 1e-3, cosine
schedule; batch 25 by default, 100 in the paper) and the FC / HFC
baselines for several numbers of training systems, each run by
``examples/spring_dynamics.py`` in a subprocess of its own, and writes
``benchmarks/results/dynamics_data_efficiency.{json,md,png}`` with the
paper's numbers next to ours::

    python benchmarks/dynamics_data_efficiency.py --n-train 10 100 400 \
        --notes benchmarks/dynamics_data_efficiency_notes.md

Finished runs (``metrics.json`` in ``--runs/<model>_n<n>``) are reused, and
an interrupted run is resumed from its checkpoint, so the study can be
restarted; ``--report-only`` rewrites the results from the finished runs.
"""
import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, 'examples', 'spring_dynamics.py')
NAME = 'dynamics_data_efficiency'

#: 5-step test MSE read off the paper's Fig. 4 (DESIGN.md, section 4).
PAPER = {
    'LieTr-T2 (paper)': {10: 7.4e-4, 100: 2.5e-5, 400: 8.5e-6, 1000: 5.7e-6,
                         3000: 1.1e-6},
    'LieConv-T2 (paper)': {10: 3.5e-3, 100: 1.6e-4, 400: 2.4e-5,
                           1000: 3.3e-5, 3000: 4.9e-6},
}
LABELS = {'lie': 'LieTr-T2 (ours)', 'fc': 'FC (ours)', 'hfc': 'HFC (ours)'}


def parse_mapping(items, name):
    mapping = {}
    for item in items or []:
        try:
            n, epochs = item.split(':')
            mapping[int(n)] = int(epochs)
        except ValueError:
            raise ValueError(
                f"'{name}' takes N:EPOCHS pairs (got {item!r})") from None
    return mapping


def run_args(model, n, epochs, args):
    argv = ['--model', model, '--n-train', str(n), '--epochs', str(epochs),
            '--seed', str(args.seed), '--root', args.root, '--no-progress']
    if model == 'lie':
        argv += ['--group', 'T2', '--hidden', '160', '--layers', '5',
                 '--heads', '8', '--kernel-dim', '16', '--attention',
                 'dot_product']
        if args.warmup:
            argv += ['--warmup', str(args.warmup)]
        if args.compile:
            argv += ['--compile']
    argv += ['--batch-size', str(args.batch_size), '--lr', str(args.lr)]
    return argv + list(args.extra)


def load_example():
    spec = importlib.util.spec_from_file_location('spring_dynamics', EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_one(model, n, epochs, args):
    out = os.path.join(args.runs, f'{model}_n{n}')
    argv = run_args(model, n, epochs, args) + ['--out', out]
    metrics_path = os.path.join(out, 'metrics.json')
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            metrics = json.load(f)
        example = load_example()
        try:
            example.check_same_recipe(metrics['args'],
                                      example.parse_args(argv), f"'{out}'")
        except ValueError as error:
            raise ValueError(f'{error}: use another --runs') from None
        if metrics['epochs'] == epochs:
            print(f'[{model} n={n}] done before, reusing {metrics_path}',
                  flush=True)
            return metrics
    if os.path.exists(os.path.join(out, 'checkpoint.pt')):
        argv.append('--resume')
    command = [sys.executable, EXAMPLE] + argv
    print(f'[{model} n={n}] {shlex.join(command)}', flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    print(f'[{model} n={n}] finished in {time.perf_counter() - start:.0f} s',
          flush=True)
    with open(metrics_path) as f:
        return json.load(f)


def collect(args):
    rows = []
    for n in args.n_train:
        for model in args.models:
            path = os.path.join(args.runs, f'{model}_n{n}', 'metrics.json')
            if not os.path.exists(path):
                continue
            with open(path) as f:
                m = json.load(f)
            rows.append({
                'model': model, 'n_train': n, 'label': LABELS[model],
                'parameters': m['parameters'], 'epochs': m['epochs'],
                'steps': m['steps'], 'test_mse_5': m['test_mse_5'],
                'test_mse_100': m['test_mse_100'],
                'energy_drift_100': m['energy_drift_100'],
                'true_energy_drift_100': m['true_energy_drift_100'],
                'best_epoch': m['best_epoch'],
                'best_val_mse': m['best_val_mse'],
                'train_time_s': m['train_time_s'],
                'eval_time_s': m['eval_time_s'],
                'threads': m['threads'],
                'args': m['args'],
            })
    return rows


def fmt(x):
    return f'{x:.2e}' if x is not None else '–'


def write_results(rows, args, command):
    os.makedirs(args.results, exist_ok=True)
    compute = sum(r['train_time_s'] + r['eval_time_s'] for r in rows)
    machine = (f'{platform.machine()} CPU, {os.cpu_count()} cores '
               f'(shared), {platform.system()}; Python '
               f'{platform.python_version()}, torch {args.torch_version}')
    data = {'command': command, 'machine': machine,
            'compute_time_s': compute, 'paper_test_mse_5': {
                k: {str(n): v for n, v in d.items()}
                for k, d in PAPER.items()}, 'runs': rows}
    with open(os.path.join(args.results, f'{NAME}.json'), 'w') as f:
        json.dump(data, f, indent=1)

    lie_epochs = sorted({(r['n_train'], r['epochs'], r['steps'])
                         for r in rows if r['model'] == 'lie'})
    batch = '/'.join(str(b) for b in sorted(
        {r['args']['batch_size'] for r in rows}))
    lines = [
        '# Spring dynamics: data efficiency',
        '',
        'Test MSE of 5-step and 100-step roll-outs (500 test systems, one '
        'chunk each), relative drift of the true energy at the end of the '
        'predicted 100-step roll-outs (mean over systems), for the T(2) '
        'LieTransformer (width 160, 5 layers, 8 heads, kernel dim 16, '
        'dot-product attention) and the FC / HFC baselines (MLPs, width 256, '
        '4 layers), trained on the first `n_train` systems of the training '
        'split with one 5-step chunk per system (the reference protocol), '
        f'batch {batch} (or `n_train` when smaller), Adam with a cosine '
        'schedule, '
        'the checkpoint with the best validation MSE (5-step roll-outs on '
        '`min(n_train, 200)` validation systems) tested. The paper columns '
        'are the 5-step test MSE read off the paper\'s Fig. 4.',
        '',
        '| n_train | model | params | epochs (steps) | test MSE 5-step | '
        'paper LieTr-T2 | paper LieConv-T2 | test MSE 100-step | '
        'energy drift (100) | train time |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        n = r['n_train']
        lines.append(
            f"| {n} | {r['label']} | {r['parameters']:,} | {r['epochs']} "
            f"({r['steps']}) | {fmt(r['test_mse_5'])} | "
            f"{fmt(PAPER['LieTr-T2 (paper)'].get(n))} | "
            f"{fmt(PAPER['LieConv-T2 (paper)'].get(n))} | "
            f"{fmt(r['test_mse_100'])} | {fmt(r['energy_drift_100'])} | "
            f"{r['train_time_s'] / 60:.1f} min |")
    true_drift = {r['true_energy_drift_100'] for r in rows}
    lines += [
        '',
        f'Energy drift of the ground truth itself (RK4 with the data\'s step) '
        f'over the same 100 steps: {fmt(max(true_drift)) if rows else "–"}.',
        '',
        '## Setup',
        '',
        f'- Command: `{command}`',
        f'- Machine: {machine}; other jobs shared the two cores during '
        f'parts of the study, so train times are upper bounds.',
        f'- Training and evaluation time of the runs, summed: '
        f'{compute / 60:.0f} min.',
        '- Epochs of the LieTransformer per n_train: ' + ', '.join(
            f'n={n}: {e} epochs ({s} steps)' for n, e, s in lie_epochs) +
        ('. The paper trains 200 epochs; fewer epochs here are a limit of '
         'the time budget.' if any(e < 200 for _, e, _ in lie_epochs)
         else ', as in the paper.'),
        f'- Baselines: {args.baseline_epochs} epochs.',
        f'- Batch {batch}; the paper trains at batch 100.' if batch != '100'
        else '- Batch 100, as in the paper.',
        '',
    ]
    with open(os.path.join(args.results, f'{NAME}.md'), 'w') as f:
        f.write('\n'.join(lines) + args.notes)
    plot(rows, os.path.join(args.results, f'{NAME}.png'))


def plot(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    styles = {'lie': ('crimson', 'o'), 'fc': ('gray', 's'),
              'hfc': ('darkorange', '^')}
    for model, (color, marker) in styles.items():
        pts = sorted((r['n_train'], r['test_mse_5']) for r in rows
                     if r['model'] == model)
        if pts:
            ax.plot(*zip(*pts), marker=marker, color=color,
                    label=LABELS[model])
    for (label, d), color in zip(PAPER.items(), ('crimson', 'dodgerblue')):
        ax.plot(list(d), list(d.values()), ls='--', marker='x', color=color,
                alpha=0.6, label=label)
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('training systems (n_train)')
    ax.set_ylabel('test MSE, 5-step roll-outs')
    ax.set_title('Spring dynamics: data efficiency')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--n-train', type=int, nargs='+',
                        default=[10, 100, 400])
    parser.add_argument('--models', nargs='+', default=['fc', 'hfc', 'lie'],
                        choices=['lie', 'fc', 'hfc'])
    parser.add_argument('--lie-epochs', nargs='*', default=[],
                        help='N:EPOCHS per n_train (default 200)')
    parser.add_argument('--baseline-epochs', type=int, default=200)
    parser.add_argument('--batch-size', type=int, default=25,
                        help='of every model (the paper: 100)')
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--warmup', type=float, default=0.0)
    parser.add_argument('--no-compile', dest='compile', action='store_false')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--root', default='data/springs')
    parser.add_argument('--runs', default='runs/dynamics_data_efficiency')
    parser.add_argument('--results',
                        default=os.path.join(ROOT, 'benchmarks', 'results'),
                        help='where the table, plot and JSON go')
    parser.add_argument('--notes', default=None,
                        help='a Markdown file appended to the results')
    parser.add_argument('--report-only', action='store_true')
    parser.add_argument('extra', nargs='*',
                        help='more arguments of the example (after --)')
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    lie_epochs = parse_mapping(args.lie_epochs, '--lie-epochs')
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
        with open(path) as f:  # the command that ran the study
            command = json.load(f)['command']
    if not args.report_only:
        # Cheap runs first; the LieTransformer with the most data last.
        for model in args.models:
            for n in args.n_train:
                epochs = (lie_epochs.get(n, 200) if model == 'lie' else
                          args.baseline_epochs)
                run_one(model, n, epochs, args)
                write_results(collect(args), args, command)
    rows = collect(args)
    write_results(rows, args, command)
    for r in rows:
        print(f"{r['label']:>16} n={r['n_train']:5d}: 5-step "
              f"{r['test_mse_5']:.2e}, 100-step {r['test_mse_100']:.2e}")
    return rows


if __name__ == '__main__':
    main()
