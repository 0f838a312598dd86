r"""The record of how ``dynamics_error_spread.md`` was made: where the test
MSE of spring runs comes from, system by system. Every run directory holds
the ``short_errors.pt`` and ``metrics.json`` of ``examples/spring_dynamics.py``
(runs finished before it saved ``short_errors.pt`` were re-evaluated from
their best checkpoint with ``--resume``, which reproduced their test MSE to
all digits). The width of a system is its largest distance between two
particles in the test chunk's first state.

    python benchmarks/results/dynamics_error_spread.py --root data/springs \
        --runs 'LABEL=DIR' ... [--plot LABEL ...]
"""

import argparse
import json
import os
import shlex
import sys

import matplotlib
import matplotlib.ticker
import torch

from torch_lie.datasets import SpringDynamics
from torch_lie.training import markdown_table

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def width(dataset: SpringDynamics) -> torch.Tensor:
    q = torch.stack([dataset[i].z0[0] for i in range(len(dataset))])
    return (q.unsqueeze(-2) - q.unsqueeze(-3)).norm(dim=-1).amax((-1, -2))


def percentile(x: torch.Tensor, of: torch.Tensor) -> torch.Tensor:
    return (of.unsqueeze(0) < x.unsqueeze(1)).double().mean(1)


def log_slope(x: torch.Tensor, y: torch.Tensor) -> float:
    # The least-squares slope of log y on log x.
    a = torch.stack([x.log(), torch.ones_like(x)], 1)
    return torch.linalg.lstsq(a, y.log().unsqueeze(1)).solution[0, 0].item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', required=True)
    parser.add_argument('--runs', nargs='+', required=True, metavar='LABEL=DIR')
    parser.add_argument('--plot', nargs='*', default=[], metavar='LABEL')
    args = parser.parse_args()
    runs = dict(item.split('=', 1) for item in args.runs)
    splits = {}
    rows, worst, errors, n_trains = [], {}, {}, {}
    for label, run in runs.items():
        with open(os.path.join(run, 'metrics.json')) as f:
            n_train = n_trains[label] = json.load(f)['n_train']
        if n_train not in splits:
            data = SpringDynamics.paper_splits(args.root, n_train, log=False,
                                               dtype=torch.float64)
            splits[n_train] = (width(data['train']), width(data['test']),
                               width(data['val']))
        train_width, test_width, _ = splits[n_train]  # one test set for all
        e = torch.load(os.path.join(run, 'short_errors.pt')).double().mean(1)
        errors[label] = e
        k = len(e) // 100
        top = e.argsort(descending=True)[:k]
        worst[label] = set(top.tolist())
        rows.append([
            label, n_train, f'{e.mean():.2e}', f'{e.median():.2e}',
            f'{e[top].sum() / e.sum():.2f}', f'{e.max() / e.sum():.2f}',
            f'{e[e.argsort()[:-k]].mean():.2e}',
            f'{percentile(test_width[top], test_width).median():.3f}',
            int((test_width[top] > train_width.quantile(0.99)).sum()),
            f'{test_width[e.argmax()]:.2f}', f'{log_slope(test_width, e):.1f}'
        ])
    for row, label in zip(rows, runs):
        shared = [len(worst[label] & worst[other]) for other in runs
                  if other != label]
        row.append(f'{torch.tensor(shared).double().median():.0f}')
    counts = torch.zeros(len(test_width), dtype=torch.long)
    for systems in worst.values():
        counts[list(systems)] += 1
    common = (2 * counts >= len(runs)).nonzero().flatten()
    lines = [
        '# Spring dynamics: the test error system by system', '',
        'Written by `benchmarks/results/dynamics_error_spread.py` (its '
        'docstring says how). Per run: the test MSE of 5-state roll-outs '
        '(the mean over 2000 systems), the median system, the share of the '
        'mean carried by the worst 1% of systems (20) and by the worst one, '
        'the mean without the worst 1%, where the worst 1% rank by width '
        '(their median percentile among the test systems), how many are '
        "wider than 99% of the run's training systems, the worst system's "
        'width, and how fast the error grows with the width. The labels '
        "(n_train, recipe, seed) are explained in "
        '`benchmarks/dynamics_data_efficiency_notes.md`.', '',
        markdown_table(['run', 'n_train', 'test MSE', 'median system',
                        'share of worst 1%', 'share of worst system',
                        'mean without worst 1%',
                        'width percentile of worst 1%',
                        'worst 1% wider than train q99',
                        'width of the worst system',
                        'slope of log error on log width',
                        "worst 1% in another run's (median)"], rows), '',
        f'{len(common)} systems are in the worst 1% of at least half the '
        'runs (random draws would share 0.2 of 20 between two runs); their '
        'width percentiles: ' + ', '.join(
            f'{v:.3f}' for v in percentile(test_width[common], test_width)
            .sort().values.tolist()) + '.', '',
        f'Widths: test median {test_width.median():.2f}, 99% '
        f'{test_width.quantile(0.99):.2f}, max {test_width.max():.2f}; '
        'training (the first n_train systems): ' + '; '.join(
            f'n_train = {n}: 99% {tr.quantile(0.99):.2f}, max {tr.max():.2f}'
            f' ({int((val > tr.quantile(0.99)).sum())} of {len(val)} '
            f'validation and {int((te > tr.quantile(0.99)).sum())} of '
            f'{len(te)} test systems wider than its 99%)'
            for n, (tr, te, val) in sorted(splits.items())) + '.', '',
        'Command: `python ' + shlex.join(sys.argv) + '`',
    ]
    if args.plot:
        fig, axes = plt.subplots(1, len(args.plot), sharey=True, squeeze=False,
                                 figsize=(4.5 * len(args.plot), 4))
        for ax, label in zip(axes[0], args.plot):
            ax.scatter(test_width, errors[label], s=3, alpha=0.4)
            ax.axhline(errors[label].mean(), color='C1', lw=1, label='mean')
            ax.axvline(splits[n_trains[label]][0].quantile(0.99), color='C2',
                       lw=1, ls='--', label='99% of training widths')
            ax.set(xscale='log', yscale='log', title=label,
                   xlabel='system width (largest particle distance)')
            ax.set_xticks([0.3, 0.5, 1, 2, 5], ['0.3', '0.5', '1', '2', '5'])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.legend(loc='upper left')
        axes[0, 0].set_ylabel('test MSE of the system (5 states)')
        fig.tight_layout()
        fig.savefig(os.path.join(HERE, 'dynamics_error_spread.png'), dpi=120)
        lines += ['', '![per-system error against width]'
                      '(dynamics_error_spread.png)']
    with open(os.path.join(HERE, 'dynamics_error_spread.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
