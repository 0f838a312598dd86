r"""LieTransformers on real molecules: a T(3) and an SE(3) model, end to end.

Data: the molecules of ASE's G2 collection (:obj:`ase.collections.g2`, 148
with more than one atom; no download) as PyG :obj:`Data(pos, x, y)`, with
:obj:`x` the one-hot element and :obj:`y` a toy target standing in for a real
property, the pair potential

.. math::
    E = \sum_{i < j} \sqrt{Z_i Z_j}\, \exp(-\|r_i - r_j\| / 1\,\AA),

standardised over the training set: smooth, invariant to rigid motions and
extensive (hence :obj:`pool='sum'`). Training molecules are moved by a new
random rigid motion (:class:`~torch_lie.transforms.RandomMotion`) every time
they are read, then lifted by the model's
:class:`~torch_lie.transforms.Lift`; the test molecules are moved once. The
T(3) model is exactly invariant to translations and learns rotations from
the augmentation; the SE(3) model is invariant to both by construction (in
distribution, as its lift draws random rotations).

The script prints parameters, test MAE (in standard deviations of the
target) and training time, checks the invariances on ethanol with
:mod:`torch_lie.testing`, and plots predicted against true values::

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
PARSER.add_argument('--overwrite', action='store_true',
                    help='replace the results already in --out')
PARSER.add_argument('--device', help='(default: cuda if available)')
PARSER.add_argument('--threads', type=int, default=1,
                    help='torch threads; molecules are tiny, so more threads '
                    'mostly add synchronisation (default: 1)')

if __name__ == '__main__':  # --help and usage errors before slow imports
    PARSER.parse_args()

import torch
import torch.nn.functional as F
from ase.collections import g2
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.loader import DataLoader
from torch_geometric.transforms import Compose
from tqdm import tqdm

from torch_lie.groups import SE3, T
from torch_lie.io.ase import atoms_to_data
from torch_lie.nn import LieTransformer
from torch_lie.testing import (
    assert_equivariant,
    assert_invariant_in_distribution,
    assert_lifted_invariant,
)
from torch_lie.training import check_counts, check_out, markdown_table, save_json
from torch_lie.transforms import Lift, RandomMotion
from torch_lie.utils import check_device
from torch_lie.visualization import plot_predictions

#: Elements of the one-hot features (all those in G2).
ELEMENTS = [1, 3, 4, 5, 6, 7, 8, 9, 11, 13, 14, 15, 16, 17]


def one_hot(z: torch.Tensor) -> torch.Tensor:
    index = torch.tensor([ELEMENTS.index(int(i)) for i in z])
    return F.one_hot(index, len(ELEMENTS)).float()


def molecule_to_data(atoms) -> Data:
    r"""An ASE :obj:`Atoms` as :obj:`Data(pos, x, y)` with the toy pair
    potential (not yet standardised) as :obj:`y`."""
    data = atoms_to_data(atoms, features=one_hot)
    c = data.z.double().sqrt()
    i, j = torch.triu_indices(data.num_nodes, data.num_nodes, offset=1)
    pos = data.pos.double()
    distance = (pos[i] - pos[j]).norm(dim=-1)
    data.y = (c[i] * c[j] * torch.exp(-distance)).sum().float().view(1)
    return data


def dataset(data_list, transform=None) -> InMemoryDataset:
    r""":obj:`data_list` as a PyG data set, transformed at every access."""
    out = InMemoryDataset(transform=transform)
    out.data, out.slices = out.collate(data_list)
    return out


@torch.no_grad()
def run_model(model, loader, device):
    r"""Predictions and targets of :obj:`model` on :obj:`loader`."""
    model.eval()
    pairs = [(model(b.to(device)).view(-1), b.y) for b in loader]
    return tuple(torch.cat(t).cpu() for t in zip(*pairs))


def train(name, lift, train_set, test_set, args):
    r"""Trains a LieTransformer with :obj:`lift` (which the data sets'
    transform applies); returns the model, its test predictions and
    targets, and the training time."""
    torch.manual_seed(args.seed)
    model = LieTransformer(len(ELEMENTS), args.hidden, 1, lift=lift,
                           num_layers=args.layers, heads=args.heads,
                           pool='sum').to(args.device)
    train_loader = DataLoader(
        dataset(train_set, Compose([RandomMotion(SE3()), model.lift])),
        batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(dataset(test_set, model.lift),
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


@torch.no_grad()
def invariance_checks(models, device, num_draws=64):
    r"""Checks the trained models on ethanol, in float64."""
    data = molecule_to_data(g2['CH3CH2OH']).to(device)
    pos, x = data.pos.double(), data.x.double()
    t_model = copy.deepcopy(models['T(3)']).double().eval()
    se3_model = copy.deepcopy(models['SE(3)']).double().eval()
    se3 = se3_model.group

    def predict(model, pos):  # lifted inside the model
        return model(Data(pos=pos, x=x))

    f64 = dict(dtypes=(torch.float64, ))
    results = {
        # T(3): exact invariance to translations of the points.
        'T(3) translation error': assert_equivariant(
            lambda p: predict(t_model, p), pos, T(3), **f64)[torch.float64],
        # SE(3): exact invariance to moving the lifted elements.
        'SE(3) left-multiplied elements error': assert_lifted_invariant(
            se3_model, Data(pos=pos, x=x), **f64)[torch.float64],
        # SE(3) on points: random lifts make it invariant in distribution.
        'SE(3) mean shift under rigid motions (std. errors)':
            assert_invariant_in_distribution(lambda p: predict(se3_model, p),
                                             pos, se3, num_draws=num_draws),
    }
    # Spread of single predictions over random rigid motions.
    motions = se3.sample(num_draws, dtype=torch.float64, device=device)
    for name, model in [('T(3)', t_model), ('SE(3)', se3_model)]:
        out = torch.stack([predict(model, se3.act(h, pos)) for h in motions])
        results[f'{name} output std under rigid motions'] = float(out.std())
    return results


def main(argv=None) -> dict:
    r"""Runs the example; returns its metrics."""
    args = PARSER.parse_args(argv)
    args.device = args.device or ('cuda' if torch.cuda.is_available() else
                                  'cpu')
    try:
        check_device(args.device)
    except ValueError as error:
        PARSER.error(str(error))
    check_counts(PARSER, args, ('epochs', 'hidden', 'layers', 'heads',
                                'batch_size', 'threads'))
    check_out(PARSER, args.out)
    if not args.lr > 0:
        PARSER.error('--lr must be > 0')
    if os.path.exists(os.path.join(args.out, 'metrics.json')) and \
            not args.overwrite:
        PARSER.error(f"'{args.out}' holds the results of a run: pass "
                     f"--overwrite to replace them, or another --out")
    torch.set_num_threads(args.threads)
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
    test_set = [RandomMotion(SE3())(data) for data in test_set]
    print(f'{len(train_set)} train / {len(test_set)} test molecules, '
          f'target {mean:.2f} +- {std:.2f} (standardised below)')

    lifts = {'T(3)': Lift(T(3)), 'SE(3)': Lift(SE3(), num_samples=2)}
    models, predictions, rows = {}, {}, []
    for name, lift in lifts.items():
        model, pred, true, seconds = train(name, lift, train_set, test_set,
                                           args)
        models[name], predictions[name] = model, (pred, true)
        rows.append([f'{name} LieTransformer',
                     sum(p.numel() for p in model.parameters()),
                     float((pred - true).abs().mean()), seconds])
    # Reference: always predicting the training mean (0 once standardised).
    baseline = float(predictions['T(3)'][1].abs().mean())
    print('\n' + markdown_table(
        ['model', 'parameters', 'test MAE', 'train s'],
        [['train mean', 0, f'{baseline:.3f}', '-']] +
        [[n, p, f'{mae:.3f}', f'{s:.1f}'] for n, p, mae, s in rows]))

    checks = invariance_checks(models, args.device)
    print('\nInvariance on ethanol (float64):')
    for key, value in checks.items():
        print(f'  {key:<52}{value:.3g}')

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'predictions.png')
    plot_predictions(path, {f'{n} LieTransformer': p
                            for n, p in predictions.items()},
                     'true (standardised)')
    print(f'\nPredicted vs true on the test set: {path}')
    metrics = {'models': {n.split()[0]: {'parameters': p, 'test_mae': mae,
                                         'seconds': s}
                          for n, p, mae, s in rows},
               'baseline_mae': baseline, 'invariance': checks, 'plot': path}
    save_json(metrics, os.path.join(args.out, 'metrics.json'))
    return metrics


if __name__ == '__main__':
    main()
