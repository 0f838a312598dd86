r"""LieTransformers on real molecules: a T(3) and an SE(3) model, end to end.

Data: the molecules of ASE's G2 collection (:obj:`ase.collections.g2`, 148
with more than one atom; no download). Each becomes a PyG
:obj:`Data(pos, x, y)` with :obj:`x` the one-hot element and :obj:`y` a toy
target standing in for a real property: the pair potential

.. math::
    E = \sum_{i < j} \sqrt{Z_i Z_j}\, \exp(-\|r_i - r_j\| / 1\,\AA),

standardised over the training set. It is smooth, invariant to rotations
and translations, and extensive (hence :obj:`pool='sum'`).

Every time a training molecule is read, it is moved by a random rigid motion
(rotation and translation), then lifted to group elements by the model's
:class:`~torch_lie.transforms.Lift` (the data set's transform ends with
:obj:`model.lift`). The test molecules are moved once by
random rigid motions, the same for both models. The T(3) model is exactly
invariant to translations but has to learn rotations from the augmentation;
the SE(3) model is invariant to both by construction (in distribution, as
its lift draws random rotations).

At the end the script prints a table (parameters, test MAE in units of the
target's standard deviation, training time), checks the invariances on
ethanol with :mod:`torch_lie.testing`, and saves predicted-vs-true plots::

    python examples/molecules.py            # about 2 minutes on 2 CPU cores
    python examples/molecules.py --epochs 5 --hidden 16
"""
import argparse
import copy
import math
import os
import time

PARSER = argparse.ArgumentParser(description=__doc__.split('\n')[0])
PARSER.add_argument('--epochs', type=int, default=150)
PARSER.add_argument('--hidden', type=int, default=64)
PARSER.add_argument('--layers', type=int, default=2)
PARSER.add_argument('--heads', type=int, default=4)
PARSER.add_argument('--batch-size', type=int, default=16)
PARSER.add_argument('--lr', type=float, default=3e-3)
PARSER.add_argument('--seed', type=int, default=0)
PARSER.add_argument('--out', default='runs/molecules/')
PARSER.add_argument('--device', help='(default: cuda if available)')
PARSER.add_argument('--threads', type=int, default=1,
                    help='torch threads; molecules are tiny, so more threads '
                    'mostly add synchronisation (default: 1)')

if __name__ == '__main__':  # --help and usage errors before slow imports
    PARSER.parse_args()

import matplotlib
import torch
import torch.nn.functional as F
from ase.collections import g2
from torch_geometric.data import Data, Dataset
from torch_geometric.loader import DataLoader
from torch_geometric.transforms import BaseTransform, Compose
from tqdm import tqdm

from torch_lie.groups import SE3, T
from torch_lie.nn import LieTransformer
from torch_lie.testing import (
    assert_equivariant,
    assert_invariant_in_distribution,
)
from torch_lie.training import save_json
from torch_lie.transforms import Lift
from torch_lie.utils import check_device

#: Elements of the one-hot features (all those in G2).
ELEMENTS = ['H', 'Li', 'Be', 'B', 'C', 'N', 'O', 'F', 'Na', 'Al', 'Si', 'P',
            'S', 'Cl']


def molecule_to_data(atoms) -> Data:
    r"""An ASE :obj:`Atoms` as :obj:`Data(pos, x, y)` with the toy pair
    potential (not yet standardised) as :obj:`y`."""
    unknown = set(atoms.get_chemical_symbols()) - set(ELEMENTS)
    if unknown:
        raise ValueError(f'{atoms.get_chemical_formula()}: elements '
                         f'{sorted(unknown)} are not in ELEMENTS')
    pos = torch.tensor(atoms.positions, dtype=torch.float32)
    index = torch.tensor([ELEMENTS.index(s)
                          for s in atoms.get_chemical_symbols()])
    x = F.one_hot(index, len(ELEMENTS)).float()
    c = torch.tensor(atoms.numbers, dtype=torch.float64).sqrt()
    pos64 = pos.double()
    i, j = torch.triu_indices(len(atoms), len(atoms), offset=1)
    energy = (c[i] * c[j] * torch.exp(-(pos64[i] - pos64[j]).norm(dim=-1)))
    return Data(pos=pos, x=x, y=energy.sum().float().view(1))


class RandomRigidMotion(BaseTransform):
    r"""Moves a molecule by a random element of SE(3): a Haar-random
    rotation and a standard-normal translation."""
    group = SE3()

    def forward(self, data: Data) -> Data:
        g = self.group.sample(1, dtype=data.pos.dtype)[0]
        data.pos = self.group.act(g, data.pos)
        return data


class Molecules(Dataset):
    r"""A list of :obj:`Data` objects, transformed at every access."""
    def __init__(self, data_list, transform=None):
        super().__init__(transform=transform)
        self.data_list = data_list

    def len(self) -> int:
        return len(self.data_list)

    def get(self, idx: int) -> Data:
        return self.data_list[idx]


def run_model(model, loader, device):
    r"""Predictions and targets of :obj:`model` on :obj:`loader`."""
    model.eval()
    preds, targets = [], []
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            preds.append(model(batch).view(-1).cpu())
            targets.append(batch.y.cpu())
    return torch.cat(preds), torch.cat(targets)


def train(name, lift, train_set, test_set, args):
    r"""Trains a LieTransformer with :obj:`lift`; returns the model, its
    test predictions and targets, and the training time. The data sets'
    transform lifts the molecules with the model's own lift."""
    torch.manual_seed(args.seed)
    model = LieTransformer(len(ELEMENTS), args.hidden, 1, lift=lift,
                           num_layers=args.layers, heads=args.heads,
                           pool='sum').to(args.device)
    train_loader = DataLoader(
        Molecules(train_set, Compose([RandomRigidMotion(), model.lift])),
        batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(Molecules(test_set, model.lift),
                             batch_size=args.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=args.epochs * len(train_loader))

    start = time.perf_counter()
    progress = tqdm(range(args.epochs), desc=f'{name:>5}')
    for _ in progress:
        model.train()
        total = 0.0
        for batch in train_loader:
            batch = batch.to(args.device)
            loss = F.mse_loss(model(batch).view(-1), batch.y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * batch.num_graphs
        progress.set_postfix(train_mse=f'{total / len(train_set):.4f}')
    seconds = time.perf_counter() - start
    pred, true = run_model(model, test_loader, args.device)
    return model, pred, true, seconds


def invariance_checks(models, device, num_draws=64):
    r"""Checks the trained models on ethanol, in float64."""
    atoms = g2['CH3CH2OH']
    data = molecule_to_data(atoms)
    pos = data.pos.to(device, torch.float64)
    x = data.x.to(device, torch.float64)
    t_model = copy.deepcopy(models['T(3)']).double().eval()
    se3_model = copy.deepcopy(models['SE(3)']).double().eval()

    def predict(model, pos):  # lifted inside the model
        return model(Data(pos=pos, x=x))

    results = {}
    with torch.no_grad():
        # T(3): exact invariance to translations of the points.
        errors = assert_equivariant(lambda p: predict(t_model, p), pos, T(3),
                                    dtypes=(torch.float64, ))
        results['T(3) translation error'] = errors[torch.float64]

        # SE(3): lift once with the model's lift, left-multiply all elements
        # by a random element and recompute the pair embeddings (same edges,
        # same features).
        se3 = se3_model.group
        lifted = se3_model.lift(Data(pos=pos, x=x))

        def from_elements(g):
            moved = copy.copy(lifted)
            moved.g = g
            moved.edge_attr = se3.edge_attr(g, lifted.edge_index, lifted.q)
            return se3_model(moved)

        errors = assert_equivariant(from_elements, lifted.g, se3,
                                    on='elements', dtypes=(torch.float64, ))
        results['SE(3) left-multiplied elements error'] = errors[torch.float64]

        # SE(3) on points: random lifts make it invariant in distribution.
        results['SE(3) mean shift under rigid motions (std. errors)'] = (
            assert_invariant_in_distribution(
                lambda p: predict(se3_model, p), pos, se3,
                num_draws=num_draws))

        # Spread of single predictions over random rigid motions.
        motions = se3.sample(num_draws, dtype=torch.float64, device=device)
        for name, model in [('T(3)', t_model), ('SE(3)', se3_model)]:
            out = torch.stack([predict(model, se3.act(h, pos))
                               for h in motions])
            results[f'{name} output std under rigid motions'] = float(
                out.std())
    return results


def plot(predictions, path):
    matplotlib.use('Agg')  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(predictions), figsize=(8, 4),
                             sharex=True, sharey=True)
    for ax, (name, (pred, true)) in zip(axes, predictions.items(), strict=True):
        lo, hi = float(true.min()), float(true.max())
        ax.plot([lo, hi], [lo, hi], color='gray', lw=1)
        ax.scatter(true, pred, s=12)
        mae = float((pred - true).abs().mean())
        ax.set_title(f'{name} LieTransformer (test MAE {mae:.3f})')
        ax.set_xlabel('true (standardised)')
    axes[0].set_ylabel('predicted')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    r"""Runs the example; returns its metrics."""
    args = PARSER.parse_args(argv)
    args.device = args.device or ('cuda' if torch.cuda.is_available() else
                                  'cpu')
    try:
        check_device(args.device)
    except ValueError as error:
        PARSER.error(str(error))
    torch.set_num_threads(args.threads)
    return run(args)


def run(args) -> dict:
    torch.manual_seed(args.seed)

    # Data: a seeded 80/20 split, the target standardised on the train set.
    data_list = [molecule_to_data(atoms) for atoms in g2 if len(atoms) > 1]
    perm = torch.randperm(len(data_list),
                          generator=torch.Generator().manual_seed(args.seed))
    num_train = math.ceil(0.8 * len(data_list))
    train_set = [data_list[i] for i in perm[:num_train]]
    test_set = [data_list[i] for i in perm[num_train:]]
    y = torch.cat([data.y for data in train_set])
    mean, std = y.mean(), y.std()
    for data in data_list:
        data.y = (data.y - mean) / std
    # The test molecules are moved once, so that both models see the same.
    test_set = [RandomRigidMotion()(data) for data in test_set]
    print(f'{len(train_set)} train / {len(test_set)} test molecules, '
          f'target {mean:.2f} +- {std:.2f} (standardised below)')

    lifts = {'T(3)': Lift(T(3)), 'SE(3)': Lift(SE3(), num_samples=2)}
    models, predictions, rows = {}, {}, []
    for name, lift in lifts.items():
        model, pred, true, seconds = train(name, lift, train_set, test_set,
                                           args)
        models[name], predictions[name] = model, (pred, true)
        rows.append((name, sum(p.numel() for p in model.parameters()),
                     float((pred - true).abs().mean()), seconds))
    # Reference: always predicting the training mean (0 once standardised).
    baseline = float(predictions['T(3)'][1].abs().mean())

    print(f"\n{'model':<22}{'parameters':>11}{'test MAE':>10}{'train s':>9}")
    print(f"{'train mean':<22}{0:>11}{baseline:>10.3f}{'-':>9}")
    for name, params, mae, seconds in rows:
        print(f'{name + " LieTransformer":<22}{params:>11}{mae:>10.3f}'
              f'{seconds:>9.1f}')

    checks = invariance_checks(models, args.device)
    print('\nInvariance on ethanol (float64):')
    for key, value in checks.items():
        print(f'  {key:<52}{value:.3g}')

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'predictions.png')
    plot(predictions, path)
    print(f'\nPredicted vs true on the test set: {path}')

    metrics = {
        'models': {name: {'parameters': params, 'test_mae': mae,
                          'seconds': seconds}
                   for name, params, mae, seconds in rows},
        'baseline_mae': baseline,
        'invariance': checks,
        'plot': path,
    }
    save_json(metrics, os.path.join(args.out, 'metrics.json'))
    return metrics


if __name__ == '__main__':
    main()
