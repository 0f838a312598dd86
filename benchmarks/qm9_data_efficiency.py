r"""Data efficiency on QM9: the LieTransformer beside PyG's SchNet and
DimeNet++ on one split, one budget.

Every run is ``examples/qm9.py`` in a subprocess of its own, on the paper's
seeded split (100,000 / 17,748 / 13,083, split seed 0: always the same
13,083 test molecules), the first ``n_train`` training molecules and the
first ``--n-val`` validation molecules, the target standardised on the
training molecules, L1 loss, the same recipe for every model (Adam, warm-up
and cosine decay, batch, epochs: an equal-epochs budget) and the test MAE at
the best validation epoch. Models at a size that trains on a 2-core CPU:

* ``lie-t3``: LieTransformer T(3) with SO(3) augmentation, width 128, 4
  layers, 8 heads, kernel dim 16, full attention;
* ``lie-se3``: LieTransformer SE(3), 2 lifts per atom, otherwise the same;
* ``schnet``, ``dimenet++``: PyG's models at their papers' QM9 sizes.

Writes ``qm9_data_efficiency_<target>.{json,md,png}`` (median and quartiles
over seeds, parameters, seconds per epoch, peak memory, the published
MAEs at about 110,000 training molecules beside) to ``--results``
(``benchmarks/results/qm9``), with each finished run's ``metrics.json`` in
``--results/runs/<target>_<model>_n<n>_s<seed>``::

    python benchmarks/qm9_data_efficiency.py --target homo --n-train 1000 \
        --seeds 0 1 2 --epochs 100

Finished runs are reused and interrupted ones resumed from their
checkpoints in ``--runs``, so the study can be restarted; ``--report-only``
rewrites the results from the recorded runs.
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import command  # noqa: E402
from benchmarks.dynamics_data_efficiency import quartiles  # noqa: E402

EXAMPLE = os.path.join(ROOT, 'examples', 'qm9.py')
LIE = ['--model', 'lie', '--hidden', '128', '--layers', '4', '--heads', '8',
       '--kernel-dim', '16']
MODELS = {
    'lie-t3': LIE + ['--group', 'T3'],  # augmented by default
    'lie-se3': LIE + ['--group', 'SE3', '--num-lift-samples', '2'],
    'schnet': ['--model', 'schnet'],
    'dimenet++': ['--model', 'dimenet++'],
}
COLORS = {'lie-t3': 'C0', 'lie-se3': 'C1', 'schnet': 'C2', 'dimenet++': 'C3'}
LABELS = {'lie-t3': 'LieTr-T3+aug (ours)', 'lie-se3': 'LieTr-SE3 (ours)',
          'schnet': "SchNet (PyG's)", 'dimenet++': "DimeNet++ (PyG's)"}
#: Published test MAEs (meV) with about 110,000 training molecules: the
#: LieTransformer paper's Table 2; SchNet and DimeNet++ as the project's
#: QM9 issue (26) quotes their papers.
PUBLISHED = {
    'homo': {'LieTr-T3+aug': 33, 'LieTr-SE3': 33, 'SchNet': 41,
             'DimeNet++': 26},
    'U0': {'LieTr-T3+aug': 17, 'LieTr-SE3': 26, 'SchNet': 14,
           'DimeNet++': 7},
}


def run_name(args, model: str, n: int, seed: int) -> str:
    return f'{args.target}_{model}_n{n}_s{seed}'


def record(args, model: str, n: int, seed: int) -> str:
    r"""Where a finished run's metrics are kept, beside the report."""
    return os.path.join(args.results, 'runs', run_name(args, model, n, seed),
                        'metrics.json')


def run_one(args, model: str, n: int, seed: int) -> None:
    out = os.path.join(args.runs, run_name(args, model, n, seed))
    if os.path.exists(record(args, model, n, seed)):
        print(f'[{model} n={n} seed={seed}] done before', flush=True)
        return
    argv = [sys.executable, EXAMPLE, *MODELS[model], '--target', args.target,
            '--root', args.root, '--n-train', str(n), '--n-val',
            str(args.n_val), '--eval-every', str(args.eval_every),
            '--epochs', str(args.epochs), '--batch-size',
            str(args.batch_size), '--lr', str(args.lr), '--seed', str(seed),
            '--threads', str(args.threads), '--no-progress', '--out', out]
    if os.path.exists(os.path.join(out, 'checkpoint.pt')):
        argv.append('--resume')  # the example refuses another recipe
    print(f'[{model} n={n} seed={seed}] {shlex.join(argv)}', flush=True)
    subprocess.run(argv, check=True, cwd=ROOT)
    os.makedirs(os.path.dirname(record(args, model, n, seed)), exist_ok=True)
    shutil.copyfile(os.path.join(out, 'metrics.json'),
                    record(args, model, n, seed))


def collect(args) -> list:
    rows = []
    for n in args.n_train:
        for model in args.models:
            runs = []
            for seed in args.seeds:
                path = record(args, model, n, seed)
                if os.path.exists(path):
                    with open(path) as f:
                        runs.append(json.load(f))
            if not runs:
                continue
            mae = [m['test_mae'] for m in runs]
            epochs = [h for m in runs for h in m['history']]
            rows.append({
                'model': model, 'label': LABELS[model], 'n_train': n,
                'seeds': [m['config']['seed'] for m in runs],
                'test_mae': dict(zip(('median', 'q1', 'q3'), quartiles(mae)),
                                 values=mae),
                'parameters': runs[0]['parameters'],
                'seconds_per_epoch': sorted(
                    h['seconds'] for h in epochs)[len(epochs) // 2],
                'peak_rss_mb': max(m['peak_rss_mb'] for m in runs),
                'num_test': runs[0]['split'][2], 'unit': runs[0]['unit'],
                'config': runs[0]['config']})
    return rows


def report(args, rows: list) -> None:
    unit = rows[0]['unit'] if rows else ''
    num_test = ', '.join(sorted({f"{r['num_test']:,}" for r in rows}))
    lines = [f'# QM9 data efficiency: {args.target}', '',
             f'Command: `{command()}`. Test MAE ({unit}) on the {num_test} '
             f'test molecules of the paper\'s split (seed 0) at the best '
             f'validation epoch (first {args.n_val} validation molecules, '
             f'every {args.eval_every} epochs); median [quartiles] over '
             f'seeds. Equal epochs for every model ({args.epochs}), batch '
             f'{args.batch_size}, Adam lr {args.lr} with 1% warm-up and '
             f'cosine decay, L1 loss on the standardised target. Seconds '
             f'per epoch: the median over epochs and seeds, validation '
             f'included, 1 thread on a shared 2-core CPU.', '',
             '| model | n_train | test MAE | seeds | parameters | '
             's / epoch | peak memory |', '|---|---|---|---|---|---|---|']
    for r in rows:
        s = r['test_mae']
        mae = (f"{s['median']:.1f} [{s['q1']:.1f}, {s['q3']:.1f}]"
               if len(s['values']) > 1 else f"{s['median']:.1f}")
        lines.append(f"| {r['label']} | {r['n_train']:,} | {mae} | "
                     f"{len(r['seeds'])} | {r['parameters']:,} | "
                     f"{r['seconds_per_epoch']:.1f} | "
                     f"{r['peak_rss_mb'] / 1024:.1f} GB |")
    published = PUBLISHED.get(args.target, {})
    if published:
        lines += ['', 'Published, with about 110,000 training molecules: ' +
                  ', '.join(f'{k} {v:g}' for k, v in published.items()) +
                  f' {unit}.']
    os.makedirs(args.results, exist_ok=True)
    path = os.path.join(args.results, f'qm9_data_efficiency_{args.target}')
    with open(path + '.json', 'w') as f:
        json.dump({'command': command(), 'target': args.target,
                   'published': published, 'rows': rows}, f, indent=1)
    with open(path + '.md', 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines), flush=True)
    plot(path + '.png', rows, published, args.target, unit)


def plot(path: str, rows: list, published: dict, target: str,
         unit: str) -> None:
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: no plot', flush=True)
        return
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for model in dict.fromkeys(r['model'] for r in rows):
        mine = [r for r in rows if r['model'] == model]
        n = [r['n_train'] for r in mine]
        med = [r['test_mae']['median'] for r in mine]
        err = [[m - r['test_mae']['q1'] for m, r in zip(med, mine)],
               [r['test_mae']['q3'] - m for m, r in zip(med, mine)]]
        ax.errorbar(n, med, yerr=err, marker='o', capsize=3,
                    color=COLORS[model], label=LABELS[model])
    for i, (name, value) in enumerate(published.items()):  # models' order
        ax.scatter([110_000 * 1.06**i], [value], marker='*', s=80,
                   color=COLORS[list(MODELS)[i]], edgecolors='k',
                   label=f'{name}, published')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('training molecules')
    ax.set_ylabel(f'test MAE {target} ({unit})')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add = parser.add_argument
    add('--target', default='homo')
    add('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    add('--n-train', type=int, nargs='+', default=[1000])
    add('--seeds', type=int, nargs='+', default=[0, 1, 2])
    add('--epochs', type=int, default=100)
    add('--batch-size', type=int, default=32)
    add('--lr', type=float, default=5e-4)
    add('--n-val', type=int, default=1000)
    add('--eval-every', type=int, default=5)
    add('--threads', type=int, default=1)
    add('--root', default='data/QM9')
    add('--runs', default='runs/qm9_study')
    add('--results', default=os.path.join(ROOT, 'benchmarks', 'results', 'qm9'))
    add('--report-only', action='store_true')
    args = parser.parse_args(argv)
    for name in ('epochs', 'batch_size', 'n_val', 'eval_every', 'threads'):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.n_train) < 1 or not args.lr > 0:
        parser.error('--n-train must be >= 1 and --lr > 0')
    if not args.report_only:
        for n in args.n_train:
            for seed in args.seeds:
                for model in args.models:
                    run_one(args, model, n, seed)
    report(args, collect(args))


if __name__ == '__main__':
    main()
