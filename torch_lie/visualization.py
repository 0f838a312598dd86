r"""Figures of the tasks' data and predictions (needs :obj:`matplotlib`)."""
import math
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_constellations(path: str, dataset, pred: Optional[Tensor] = None,
                        num: int = 6, title: str = '') -> None:
    r"""Draws the first :obj:`num` constellations of :obj:`dataset` (a
    :class:`~torch_lie.datasets.Constellation`), each pattern as one shaded
    polygon coloured by its shape, titled with the true counts and, given
    :obj:`pred` (:obj:`[S, 4]`), the predicted ones (red where wrong)."""
    from torch_lie.datasets.constellation import CONSTELLATION_SHAPES
    shapes = len(CONSTELLATION_SHAPES)
    plt = _pyplot()
    cols = min(num, 3)
    rows = math.ceil(num / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.7 * rows),
                             squeeze=False)
    colors = plt.cm.tab10.colors
    for i, ax in enumerate(axes.flat):
        ax.axis('off')
        if i >= num:
            continue
        item = dataset[i]
        for p in item.pattern.unique().tolist():
            # One glyph per pattern: its points joined in the order of
            # their angles around the pattern's centre.
            pts = item.pos[item.pattern == p]
            rel = pts - pts.mean(0)
            pts = pts[torch.atan2(rel[:, 1], rel[:, 0]).argsort()]
            ax.fill(pts[:, 0], pts[:, 1], color=colors[p % shapes],
                    alpha=0.3, lw=1.2, ec=colors[p % shapes])
            ax.plot(pts[:, 0], pts[:, 1], 'o', ms=3, color=colors[p % shapes])
        true = item.y.view(-1).tolist()
        text = f'true {true}'
        wrong = False
        if pred is not None:
            guess = pred[i].tolist()
            text += f'\npredicted {guess}'
            wrong = guess != true
        ax.set_title(text, fontsize=9, color='crimson' if wrong else 'black')
        ax.set_aspect('equal')
    for s, name in enumerate(CONSTELLATION_SHAPES):
        axes.flat[0].fill([], [], color=colors[s], alpha=0.5, label=name)
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc='lower center',
               ncol=shapes, fontsize=8)
    fig.suptitle(f'{title}\ncounts of ({", ".join(CONSTELLATION_SHAPES)})'
                 .strip(), fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_trajectories(path: str, pred: Tensor, true: Tensor,
                      num_systems: int = 3, title: str = '') -> None:
    r"""Draws particle paths of :obj:`num_systems` systems, the true ones
    (top row) above the predicted ones (bottom row) on the same axes;
    :obj:`pred` and :obj:`true` are :obj:`[B, T, 2, N, 2]` (positions
    :obj:`[..., 0, :, :]`). Each particle has its colour and a dot at its
    start."""
    plt = _pyplot()
    num = min(num_systems, pred.size(0))
    fig, axes = plt.subplots(2, num, figsize=(3.6 * num, 7), squeeze=False,
                             sharex='col', sharey='col')
    colors = plt.cm.tab10.colors
    for s in range(num):
        for row, (paths, label) in enumerate(((true, 'true'),
                                              (pred, 'predicted'))):
            ax = axes[row][s]
            for i in range(paths.size(3)):
                c = colors[i % len(colors)]
                ax.plot(paths[s, :, 0, i, 0], paths[s, :, 0, i, 1], color=c,
                        lw=1)
                ax.plot(paths[s, 0, 0, i, 0], paths[s, 0, 0, i, 1], 'o',
                        color=c, ms=3)
            ax.set_title(f'system {s}: {label}', fontsize=9)
            ax.set_xlabel('x (position units)')
            ax.set_ylabel('y (position units)')
        # Framed on the true paths: a diverging prediction leaves the frame.
        lo = true[s, :, 0].amin((0, 1))
        hi = true[s, :, 0].amax((0, 1))
        half = 0.6 * float((hi - lo).max()) + 1e-3
        mid = (lo + hi) / 2
        axes[0][s].set_xlim(float(mid[0]) - half, float(mid[0]) + half)
        axes[0][s].set_ylim(float(mid[1]) - half, float(mid[1]) + half)
        axes[0][s].set_aspect('equal')
        axes[1][s].set_aspect('equal')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rollout_error(path: str, errors: Dict[str, Tensor], dt: float,
                       train_steps: Optional[int] = None,
                       quantiles: Sequence[float] = (0.25, 0.75),
                       title: str = '') -> None:
    r"""Draws the squared error of roll-outs against time for several
    models on one logarithmic axis: the median over systems and a band
    between the :obj:`quantiles`. :obj:`errors` maps a model's name to its
    per-system errors :obj:`[B, T]` (step 0 is the initial state);
    :obj:`train_steps` marks the horizon the models were trained on."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, err in errors.items():
        err = err.double()[:, 1:]
        t = dt * torch.arange(1, err.size(1) + 1)
        lo, mid, hi = torch.quantile(
            err, torch.tensor([quantiles[0], 0.5, quantiles[1]],
                              dtype=err.dtype), dim=0)
        line, = ax.plot(t, mid, lw=1.5, label=f'{name} (median)')
        ax.fill_between(t, lo, hi, color=line.get_color(), alpha=0.2,
                        lw=0)
    if train_steps is not None:
        ax.axvline(dt * train_steps, color='gray', ls=':', lw=1,
                   label='training horizon')
    ax.set_yscale('log')
    ax.set_xlabel('time')
    ax.set_ylabel('squared error (mean over coordinates)')
    ax.set_title(title or 'roll-out error; bands: quartiles over systems',
                 fontsize=10)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_predictions(path: str, predictions: Dict[str, Sequence[Tensor]],
                     label: str = 'true') -> None:
    r"""Draws predicted against true values, one panel per model with its
    mean absolute error: :obj:`predictions` maps a model's name to
    :obj:`(pred, true)`, two tensors of the same shape; :obj:`label` names
    the true values' axis."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(predictions), sharex=True, sharey=True,
                             figsize=(4 * len(predictions), 4), squeeze=False)
    for ax, (name, (pred, true)) in zip(axes[0], predictions.items()):
        lo, hi = float(true.min()), float(true.max())
        ax.plot([lo, hi], [lo, hi], color='gray', lw=1)
        ax.scatter(true, pred, s=12)
        mae = float((pred - true).abs().mean())
        ax.set_title(f'{name} (MAE {mae:.3g})', fontsize=10)
        ax.set_xlabel(label)
    axes[0, 0].set_ylabel('predicted')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
