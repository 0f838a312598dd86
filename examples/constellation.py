r"""Counting patterns in constellations with a LieTransformer.

The constellation task of the LieTransformer paper (Hutchinson et al., 2021,
Sec. 5.1): a constellation is a cloud of up to 34 points, the corners of up
to eight patterns (two copies each of a triangle, a square, a pentagon and an
"L"); four classification heads count the copies of each shape present (0, 1
or 2). The data (:class:`torch_lie.datasets.constellation.Constellation`):
10,000 training and 1,000 test constellations, with per-pattern rotations of
at most 0.33 pi; the test set is evaluated as it is and moved as a whole by a
random translation ("T2") or rotation and translation ("SE2"), where only
models invariant to those motions keep their accuracy.

Models:

* ``--model lie`` (default): a :class:`~torch_lie.nn.LieTransformer` on the
  lifted points, for any ``--group`` acting on the plane (``T2``, ``SE2`` with
  ``--num-samples`` random lifts per point, ``SE2-C4`` (exactly invariant to
  translations and quarter turns), ``Trivial2`` (absolute positions: not
  invariant), ...). The model owns its :class:`~torch_lie.transforms.Lift`
  (full attention) and takes batches of constellations (PyG
  :class:`~torch_geometric.data.Batch` objects of :obj:`Data(pos, x, y)`)
  as they are, choosing its kernel (batched dense products for
  constellations of equal or similar sizes, sparse edges otherwise).
* ``--model transformer``: the non-invariant baseline, a standard pre-LN
  transformer encoder (:class:`torch.nn.TransformerEncoder`, the same
  width, depth and heads, full attention with padding masks) on the raw
  positions concatenated with the point features, followed by the same masked
  mean pooling and output MLP: the analogue of the paper's Set Transformer
  baseline.

Content features (``--features``): ``distances`` (default, as the reference:
each point's sorted distances to the other points, invariant to rigid
motions) or ``ones``. With ``ones`` and softmax attention a LieTransformer
cannot see the geometry at all: all points start with the same features, the
softmax weights of every point sum to one, so every attention output equals
the (common) value and the prediction is constant. The script refuses that
combination (use ``--attention dot_product`` or ``distances``).

Training: cross entropy of the four heads, Adam with a per-step cosine
schedule, batches of constellations of similar sizes (``--bucket``: the
LieTransformer then runs its batched dense kernel on the constellations
padded to the largest of the batch, with little padding), each batch
processed in chunks of at most ``--max-pairs`` lifted pairs with
accumulated gradients (full attention keeps per-pair tensors of size
constellations x (lifted points)^2 x heads x kernel_dim: this bounds
memory, and small chunks stay in cache; the training is the same for any
value), test accuracy after every epoch
(``--eval-every``). Accuracy is the mean over the four heads (predicting "1
copy" everywhere scores about 0.50). A checkpoint is written atomically after
every epoch; ``--resume`` continues from it (with more ``--epochs``, the
cosine schedule is stretched). At the end: accuracy on the test set and its
T2 and SE2 variants, ``predictions.png`` (test constellations coloured by
pattern, true and predicted counts) and ``metrics.json`` in ``--out``::

    python examples/constellation.py --group T2 --out runs/constellation-t2
    python examples/constellation.py --group SE2-C4 --epochs 6 \
        --out runs/constellation-c4
    python examples/constellation.py --model transformer \
        --out runs/constellation-tf
    python examples/constellation.py --group T2 --resume --epochs 80 \
        --out runs/constellation-t2

Cost at the default sizes (width 128, 4 layers, 8 heads, kernel_dim 16,
batch 100; 100 steps per epoch), measured with ``--threads 1`` while another
job kept both cores of a 2-core machine busy: T2 about 46 s per epoch (so
the default 50 epochs take about 40 minutes to an hour), SE2 with one lift
sample similar, SE2 with 2 samples about 3x and SE2-C4 (4 lifted elements
per point, 16x the pairs) about 10x slower per epoch (8-11 minutes), the
transformer baseline about 10 s per epoch. On a shared machine,
``--threads 1`` is much faster than two competing threads.
"""
import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader
from torch_geometric.utils import to_dense_batch
from tqdm import tqdm

from torch_lie.datasets.constellation import CONSTELLATION_SHAPES, Constellation
from torch_lie.groups import group_resolver
from torch_lie.nn import LieTransformer
from torch_lie.nn.models.lie_transformer import MLP
from torch_lie.transforms import Lift
from torch_lie.utils import atomic_save

NUM_SHAPES = len(CONSTELLATION_SHAPES)
NUM_COUNTS = 3  # 0, 1 or 2 copies of each shape.
CHECKPOINT = 'checkpoint.pt'
FORMAT = 'torch_lie/examples/constellation/1'

#: Test accuracy of the paper (trained on the data as generated, "D"):
#: on the test set and on the rotated test set.
PAPER_ACCURACY = {
    'LieTr-T2': {'test': 0.75, 'test_SE2': 0.63},
    'LieTr-SE2': {'test': 0.71, 'test_SE2': 0.69},
    'SetTransformer': {'test': 0.58, 'test_SE2': 0.44},
}

#: Entries of the configuration that must match to --resume.
RESUME_KEYS = ('model', 'group', 'num_samples', 'features', 'hidden',
               'layers', 'heads', 'kernel_dim', 'attention', 'mlp_ratio',
               'num_train', 'data_seed', 'batch_size', 'lr', 'seed',
               'bucket')


# Models ####################################################################


class TransformerBaseline(torch.nn.Module):
    r"""A standard (non-invariant) transformer encoder on batches of point
    clouds (:obj:`pos`, :obj:`x`, :obj:`batch`), padded to the largest: a
    linear embedding of :obj:`[x, pos]`, :obj:`num_layers` pre-LN encoder
    layers with full self-attention (padded points masked out), a final
    LayerNorm, masked mean pooling and an output MLP."""
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, num_layers: int, heads: int,
                 mlp_ratio: float = 1.0, dim: int = 2):
        super().__init__()
        self.embedding = torch.nn.Linear(in_channels + dim, hidden_channels)
        layer = torch.nn.TransformerEncoderLayer(
            hidden_channels, heads, int(mlp_ratio * hidden_channels),
            dropout=0.0, activation=F.silu, batch_first=True,
            norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(
            layer, num_layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(hidden_channels)
        self.head = MLP(hidden_channels, hidden_channels, out_channels)

    def forward(self, data: Batch) -> Tensor:
        h, mask = to_dense_batch(torch.cat([data.x, data.pos], dim=-1),
                                 data.batch)
        h = self.encoder(self.embedding(h), src_key_padding_mask=~mask)
        h = self.norm(h)
        h = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.head(h)


class ConstellationModel(torch.nn.Module):
    r"""Counts the shapes of constellations: a :obj:`Data(pos, x)` or a
    batch of them to logits :obj:`[B, 4, 3]`. Either a LieTransformer with
    the lift :obj:`Lift(group, num_samples)` (:obj:`group` given) or
    :class:`TransformerBaseline`."""
    def __init__(self, in_channels: int, hidden: int, layers: int,
                 heads: int, group: Optional[str] = None,
                 num_samples: int = 1, kernel_dim: int = 16,
                 attention: str = 'softmax', mlp_ratio: float = 1.0):
        super().__init__()
        out = NUM_SHAPES * NUM_COUNTS
        if group is None:
            self.net = TransformerBaseline(in_channels, hidden, out, layers,
                                           heads, mlp_ratio)
        else:
            self.net = LieTransformer(in_channels, hidden, out,
                                      lift=Lift(group, num_samples),
                                      num_layers=layers, heads=heads,
                                      kernel_dim=kernel_dim,
                                      attention=attention,
                                      mlp_ratio=mlp_ratio)

    @property
    def lift_size(self) -> int:
        r"""Lifted elements per point (1 for the baseline)."""
        lift = getattr(self.net, 'lift', None)
        return 1 if lift is None else lift.lift_size

    def forward(self, data: Batch) -> Tensor:
        return self.net(data).view(-1, NUM_SHAPES, NUM_COUNTS)


def build_model(args, in_channels: int) -> ConstellationModel:
    lie = args.model == 'lie'
    return ConstellationModel(in_channels, args.hidden, args.layers,
                              args.heads, args.group if lie else None,
                              args.num_samples, args.kernel_dim,
                              args.attention, args.mlp_ratio)


def model_name(args) -> str:
    if args.model == 'transformer':
        return 'Transformer'
    name = f'LieTransformer-{args.group}'
    if not group_resolver(args.group).deterministic:
        name += f' ({args.num_samples} lift sample' + (
            's)' if args.num_samples > 1 else ')')
    return name


# Arguments #################################################################


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add('--model', choices=('lie', 'transformer'), default='lie')
    add('--group', default='T2',
        help="group of the LieTransformer (a group_resolver name acting on "
        "the plane: T2, SE2, SE2-C4, Trivial2, ...)")
    add('--num-samples', type=int, default=1,
        help='lifted elements per point for random lifts (SE2)')
    add('--features', choices=('distances', 'ones'), default='distances',
        help='point features: sorted distances to the other points, or ones')
    add('--hidden', type=int, default=128)
    add('--layers', type=int, default=4)
    add('--heads', type=int, default=8)
    add('--kernel-dim', type=int, default=16)
    add('--mlp-ratio', type=float, default=1.0)
    add('--attention', choices=('softmax', 'dot_product'), default='softmax')
    add('--epochs', type=int, default=50)
    add('--batch-size', type=int, default=100)
    add('--eval-batch-size', type=int, default=250)
    add('--lr', type=float, default=1e-3)
    add('--bucket', action=argparse.BooleanOptionalAction, default=True,
        help='batch constellations of similar sizes (less padding)')
    add('--max-pairs', type=int, default=1 << 14,
        help='lifted pairs (constellations x lifted points^2) per forward '
        'and backward pass: larger batches are processed in chunks with '
        'accumulated gradients (bounds the memory of the per-pair tensors; '
        'the training is the same for any value)')
    add('--num-train', type=int, default=10_000, help='training constellations')
    add('--num-test', type=int, default=1_000, help='test constellations')
    add('--eval-every', type=int, default=1,
        help='test accuracy every this many epochs (0: only at the end)')
    add('--seed', type=int, default=0,
        help='seed of the model, the batches and the lifts')
    add('--data-seed', type=int, default=0)
    add('--root', default='data/constellation', help='data directory')
    add('--out', default='runs/constellation', help='output directory')
    add('--resume', action='store_true',
        help='continue from the checkpoint in --out')
    add('--threads', type=int, default=None,
        help='torch threads (default: torch\'s choice)')
    add('--plot', type=int, default=6, help='test constellations to plot')
    add('--no-progress', action='store_true', help='no progress bars')
    add('--summary', nargs='+', metavar='DIR',
        help='only print a table of the finished runs in these output '
        'directories (with the paper\'s accuracies) and exit')
    add('--markdown', metavar='PATH',
        help='with --summary: also write the table to this markdown file')
    args = parser.parse_args(argv)
    if args.summary is None:
        check_args(args)
    return args


def check_args(args: argparse.Namespace):
    positive = ['num_samples', 'hidden', 'layers', 'heads', 'kernel_dim',
                'epochs', 'batch_size', 'eval_batch_size', 'num_train',
                'num_test', 'threads', 'max_pairs']
    for name in positive:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"'--{name.replace('_', '-')}' must be >= 1 "
                             f"(got {value})")
    for name in ('plot', 'eval_every'):
        if getattr(args, name) < 0:
            raise ValueError(f"'--{name.replace('_', '-')}' must be >= 0")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise ValueError(f"'--lr' must be a positive number (got {args.lr})")
    if not args.mlp_ratio > 0:
        raise ValueError(f"'--mlp-ratio' must be positive (got "
                         f"{args.mlp_ratio})")
    if args.hidden % args.heads:
        raise ValueError(f"'--hidden' ({args.hidden}) must be divisible by "
                         f"'--heads' ({args.heads})")
    if args.model == 'lie':
        # ValueError for unknown names and groups not acting on the plane.
        group = group_resolver(args.group, space_dim=2)
        group.lift_size(args.num_samples)  # ValueError for C_k with samples
        if args.features == 'ones' and args.attention == 'softmax':
            raise ValueError(
                "'--features ones' with softmax attention: every point "
                "starts with the same features and softmax weights sum to "
                "one, so a LieTransformer's output would not depend on the "
                "points at all; use '--features distances' or "
                "'--attention dot_product'")


# Data ######################################################################


def load_data(args) -> Dict[str, Constellation]:
    r"""The training set, the test set and its two moved variants: items
    :obj:`Data(pos, x, pattern, y)`."""
    features = None if args.features == 'ones' else args.features
    common = dict(root=args.root, seed=args.data_seed, features=features,
                  log=not args.no_progress)
    sets = {
        'train': Constellation(split='train', num_samples=args.num_train,
                               **common),
        'test': Constellation(split='test', num_samples=args.num_test,
                              **common),
        'test_T2': Constellation(split='test', variant='T2',
                                 num_samples=args.num_test, **common),
        'test_SE2': Constellation(split='test', variant='SE2',
                                  num_samples=args.num_test, **common),
    }
    return sets


def point_counts(dataset: Constellation) -> Tensor:
    r"""The number of points of every constellation (from the data set's
    slices: reading every item would take seconds)."""
    counts = dataset.slices['pos'].diff()
    return counts[torch.as_tensor(list(dataset.indices()), dtype=torch.long)]


def make_batches(sizes: Tensor, batch_size: int,
                 generator: Optional[torch.Generator] = None,
                 shuffle: bool = True, bucket: bool = True,
                 pool: int = 50) -> List[Tensor]:
    r"""Index batches of a data set whose items have :obj:`sizes` points.
    With :obj:`bucket`, the shuffled items are cut into pools of
    :obj:`pool` batches, sorted by size within each pool and batched, and the
    batches are shuffled: batches of similar sizes, so little padding."""
    num = sizes.numel()
    order = (torch.randperm(num, generator=generator) if shuffle else
             torch.arange(num))
    if bucket:
        chunks = order.split(pool * batch_size)
        order = torch.cat([
            c[sizes[c].argsort(stable=True)] for c in chunks])
    batches = list(order.split(batch_size))
    if shuffle and bucket:
        perm = torch.randperm(len(batches), generator=generator)
        batches = [batches[i] for i in perm.tolist()]
    return batches


def split_batch(index: Tensor, sizes: Tensor, lift_size: int,
                max_pairs: int) -> List[Tensor]:
    r"""Cuts a batch into consecutive chunks of at most :obj:`max_pairs`
    lifted pairs each (:obj:`len(chunk) * (n * lift_size) ** 2`, :obj:`n` the
    largest constellation of the batch; at least one constellation per
    chunk): the per-pair tensors of full attention grow with the square of
    the lifted points, so this bounds memory (of the sparse kernel, and of
    the dense kernel on constellations padded to the largest)."""
    pairs = (int(sizes[index].max()) * lift_size) ** 2
    return list(index.split(max(1, max_pairs // pairs)))


def chunk_loader(dataset: Constellation, chunks: List[Tensor]) -> DataLoader:
    r"""A loader of the batches (:class:`~torch_geometric.data.Batch` of
    :obj:`Data(pos, x, pattern, y)`) of the index :obj:`chunks`, in order."""
    return DataLoader(dataset, batch_sampler=[c.tolist() for c in chunks])


@torch.no_grad()
def evaluate(model: ConstellationModel, data: Constellation,
             batch_size: int, device, seed: int, bucket: bool = True,
             max_pairs: int = 1 << 14) -> dict:
    r"""Cross entropy, accuracy (mean over the heads), per-head accuracy,
    the fraction of constellations with all four counts right, and the
    predicted counts :obj:`[S, 4]`. Random lifts draw from the random state
    seeded by :obj:`seed` (and restored afterwards): the same draws at every
    evaluation, and the training's random state is left alone."""
    model.eval()
    sizes = point_counts(data)
    y = data.y
    pred = torch.empty_like(y)
    loss = 0.0
    devices = [device] if device.type == 'cuda' else []
    with torch.random.fork_rng(devices):
        torch.manual_seed(seed)
        for index in make_batches(sizes, batch_size, shuffle=False,
                                  bucket=bucket):
            chunks = split_batch(index, sizes, model.lift_size, max_pairs)
            for chunk, batch in zip(chunks, chunk_loader(data, chunks),
                                    strict=True):
                batch = batch.to(device)
                logits = model(batch)
                loss += float(F.cross_entropy(logits.reshape(-1, NUM_COUNTS),
                                              batch.y.reshape(-1),
                                              reduction='sum'))
                pred[chunk] = logits.argmax(-1).cpu()
    correct = (pred == y).float()
    return {
        'loss': loss / y.numel(),
        'accuracy': float(correct.mean()),
        'accuracy_per_shape': dict(zip(CONSTELLATION_SHAPES,
                                       correct.mean(0).tolist())),
        'exact_match': float(correct.all(1).float().mean()),
        'pred': pred,
    }


# Checkpoints ###############################################################


def write_json(obj, path: str):
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def lr_lambda(total_steps: int):
    def factor(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(1.0, step / total_steps)))

    return factor


# Training ##################################################################


def train(args, model, data, device, log) -> dict:
    train_set = data['train']
    sizes = point_counts(train_set)
    loader_gen = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = math.ceil(sizes.numel() / args.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(args.epochs * steps_per_epoch))
    config = {key: getattr(args, key) for key in RESUME_KEYS}

    ckpt_path = os.path.join(args.out, CHECKPOINT)
    start_epoch, history, train_time, resumed_from = 1, [], 0.0, None
    if os.path.exists(ckpt_path):
        if not args.resume:
            raise ValueError(f"'{ckpt_path}' exists: pass --resume to "
                             f"continue that run, or choose another --out")
        ckpt = torch.load(ckpt_path, weights_only=False)
        if ckpt.get('format') != FORMAT:
            raise ValueError(f"'{ckpt_path}' is not a checkpoint of "
                             f"examples/constellation.py")
        diffs = [f'{key}: checkpoint {ckpt["config"].get(key)!r}, '
                 f'requested {value!r}' for key, value in config.items()
                 if ckpt['config'].get(key) != value]
        if diffs:
            raise ValueError(f"'--resume': the checkpoint in '{args.out}' "
                             f"has another configuration ({'; '.join(diffs)})")
        model.load_state_dict(ckpt['model'])
        optimizer.load_state_dict(ckpt['optimizer'])
        scheduler.load_state_dict(ckpt['scheduler'])
        torch.set_rng_state(ckpt['rng']['torch'])
        random.setstate(ckpt['rng']['python'])
        loader_gen.set_state(ckpt['rng']['loader'])
        start_epoch = ckpt['epoch'] + 1
        history, train_time = ckpt['history'], ckpt['train_time']
        resumed_from = ckpt['epoch']
        log(f'resumed from epoch {ckpt["epoch"]} of {ckpt_path}')
        if ckpt['total_steps'] != args.epochs * steps_per_epoch:
            log(f'cosine schedule stretched to {args.epochs} epochs')
    elif args.resume:
        raise FileNotFoundError(f"'--resume': no checkpoint at "
                                f"'{ckpt_path}'")

    for epoch in range(start_epoch, args.epochs + 1):
        model.train()
        start = time.perf_counter()
        total, correct, count = 0.0, 0.0, 0
        batches = make_batches(sizes, args.batch_size, loader_gen,
                               bucket=args.bucket)
        bar = tqdm(batches, desc=f'epoch {epoch}/{args.epochs}', leave=False,
                   disable=args.no_progress, file=sys.stdout)
        for index in bar:
            # The mean loss of the batch, its gradient accumulated over
            # chunks that bound the memory (the same for any --max-pairs).
            optimizer.zero_grad()
            loss = 0.0
            chunks = split_batch(index, sizes, model.lift_size,
                                 args.max_pairs)
            for batch in chunk_loader(train_set, chunks):
                batch = batch.to(device)
                logits = model(batch)
                part = F.cross_entropy(logits.reshape(-1, NUM_COUNTS),
                                       batch.y.reshape(-1), reduction='sum')
                part = part / (NUM_SHAPES * index.numel())
                part.backward()
                loss += part.item()
                correct += float((logits.argmax(-1) == batch.y).sum())
            optimizer.step()
            scheduler.step()
            if not math.isfinite(loss):
                raise FloatingPointError(f'non-finite training loss at epoch '
                                         f'{epoch}; try a smaller --lr')
            total += loss * index.numel()
            count += index.numel()
            bar.set_postfix(loss=f'{total / count:.3f}',
                            acc=f'{correct / (count * NUM_SHAPES):.3f}')
        seconds = time.perf_counter() - start
        train_time += seconds
        entry = {'epoch': epoch, 'train_loss': total / count,
                 'train_accuracy': correct / (count * NUM_SHAPES),
                 'lr': optimizer.param_groups[0]['lr'], 'seconds': seconds}
        message = (f'epoch {epoch:3d}/{args.epochs}  train loss '
                   f'{entry["train_loss"]:.4f} acc '
                   f'{entry["train_accuracy"]:.4f}')
        if args.eval_every and (epoch % args.eval_every == 0
                                or epoch == args.epochs):
            test = evaluate(model, data['test'], args.eval_batch_size,
                            device, args.seed, args.bucket, args.max_pairs)
            entry.update(test_loss=test['loss'],
                         test_accuracy=test['accuracy'])
            message += (f'  test loss {test["loss"]:.4f} acc '
                        f'{test["accuracy"]:.4f}')
        history.append(entry)
        log(f'{message}  {seconds:6.1f} s')
        atomic_save({
            'format': FORMAT,
            'config': config,
            'args': vars(args),
            'model': model.state_dict(),
            'optimizer': optimizer.state_dict(),
            'scheduler': scheduler.state_dict(),
            'epoch': epoch,
            'total_steps': args.epochs * steps_per_epoch,
            'history': history,
            'train_time': train_time,
            'rng': {'torch': torch.get_rng_state(),
                    'python': random.getstate(),
                    'loader': loader_gen.get_state()},
        }, ckpt_path)
    return {'history': history, 'train_time_s': train_time,
            'start_epoch': start_epoch, 'resumed_from_epoch': resumed_from,
            'steps_per_epoch': steps_per_epoch}


# Plot ######################################################################


def plot_predictions(path: str, data: Constellation, pred: Tensor,
                     num: int, title: str):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cols = min(num, 3)
    rows = math.ceil(num / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.9 * rows),
                             squeeze=False)
    markers = ('^', 's', 'p', 'D')  # triangle, square, pentagon, L
    colors = plt.cm.tab10.colors
    for i, ax in enumerate(axes.flat):
        if i >= num:
            ax.axis('off')
            continue
        item = data[i]
        pos, pattern = item.pos, item.pattern
        for p in pattern.unique().tolist():
            sel = pattern == p
            shape = p % NUM_SHAPES
            ax.scatter(pos[sel, 0], pos[sel, 1], s=28,
                       marker=markers[shape], color=colors[p % len(colors)],
                       edgecolors='k', linewidths=0.4)
        true, guess = item.y[0].tolist(), pred[i].tolist()
        ok = ''.join('.' if t == g else 'x' for t, g in zip(true, guess))
        ax.set_title(f'true {" ".join(map(str, true))}\n'
                     f'pred {" ".join(map(str, guess))}  [{ok}]',
                     fontsize=9, family='monospace',
                     color='black' if true == guess else 'crimson')
        ax.set_aspect('equal')
        ax.set_xticks([])
        ax.set_yticks([])
    for shape, marker in enumerate(markers):
        axes.flat[0].scatter([], [], marker=marker, color='white',
                             edgecolors='k', linewidths=0.6,
                             label=CONSTELLATION_SHAPES[shape])
    axes.flat[0].legend(loc='best', fontsize=7)
    fig.suptitle(f'{title}\ncounts of (triangle, square, pentagon, L); '
                 f'colour = pattern', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# Summary ###################################################################


PAPER_NAMES = {'LieTransformer-T2': 'LieTr-T2', 'LieTransformer-SE2':
               'LieTr-SE2', 'Transformer': 'SetTransformer'}


def summary(dirs: List[str], markdown: Optional[str] = None) -> List[dict]:
    r"""A markdown table of the runs in the output directories
    :obj:`dirs` next to the paper's accuracies: test accuracy as generated,
    translated (T2) and rotated (SE2), and the drop under rotation (the
    benefit of invariance), and the median epoch time (robust to pauses).
    Printed, and written to :obj:`markdown`."""
    runs = []
    for directory in dirs:
        with open(os.path.join(directory, 'metrics.json')) as f:
            runs.append(json.load(f))
    lines = ['| model | parameters | epochs | median epoch | test | test T2 | '
             'test SE2 (rotated) | drop under rotation | paper: test / '
             'rotated |', '|---|---|---|---|---|---|---|---|---|']
    for m, directory in zip(runs, dirs):
        paper = PAPER_ACCURACY.get(PAPER_NAMES.get(m['model'].split(' (')[0]))
        lines.append(
            f"| {m['model']} (`{directory}`) | {m['parameters']:,} | "
            f"{len(m['history'])} | "
            f"{statistics.median(h['seconds'] for h in m['history']):.0f} s | "
            f"{m['test_accuracy']:.3f} | {m['test_T2_accuracy']:.3f} | "
            f"{m['test_SE2_accuracy']:.3f} | "
            f"{m['test_accuracy'] - m['test_SE2_accuracy']:+.3f} | "
            + ('-' if paper is None else
               f"{paper['test']:.2f} / {paper['test_SE2']:.2f}") + ' |')
    print('\n'.join(lines))
    if markdown is not None:
        with open(markdown, 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return runs


# Main ######################################################################


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.summary:
        return {'runs': summary(args.summary, args.markdown)}
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    device = torch.device('cpu')

    def log(msg):
        print(msg, flush=True)

    wall = time.perf_counter()
    data = load_data(args)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model = build_model(args, data['train'].num_features).to(device)
    params = sum(p.numel() for p in model.parameters())
    name = model_name(args)
    log(f'{name}: {params:,} parameters; {args.num_train} training and '
        f'{args.num_test} test constellations, features {args.features}')

    result = train(args, model, data, device, log)

    start = time.perf_counter()
    results = {}
    for split in ('test', 'test_T2', 'test_SE2'):
        results[split] = evaluate(model, data[split], args.eval_batch_size,
                                  device, args.seed, args.bucket,
                                  args.max_pairs)
    eval_time = time.perf_counter() - start

    png = os.path.join(args.out, 'predictions.png')
    plotted = min(args.plot, args.num_test)
    if plotted:
        plot_predictions(png, data['test'], results['test']['pred'], plotted,
                         f'{name}: test constellations (accuracy '
                         f'{results["test"]["accuracy"]:.3f})')

    metrics = {
        'model': name,
        'args': vars(args),
        'parameters': params,
        'epochs': args.epochs,
        'steps_per_epoch': result['steps_per_epoch'],
        'history': result['history'],
        'start_epoch': result['start_epoch'],
        'resumed_from_epoch': result['resumed_from_epoch'],
        'train_time_s': result['train_time_s'],
        'epoch_time_s': (result['train_time_s'] / len(result['history'])
                         if result['history'] else None),
        'eval_time_s': eval_time,
        'wall_time_s': time.perf_counter() - wall,
        'paper_accuracy': PAPER_ACCURACY,
        'plot': png if plotted else None,
        'threads': torch.get_num_threads(),
        'torch': torch.__version__,
    }
    for split, res in results.items():
        metrics[f'{split}_accuracy'] = res['accuracy']
        metrics[f'{split}_loss'] = res['loss']
        metrics[f'{split}_exact_match'] = res['exact_match']
        metrics[f'{split}_accuracy_per_shape'] = res['accuracy_per_shape']
    write_json(metrics, os.path.join(args.out, 'metrics.json'))
    log(f'{name}: test accuracy {metrics["test_accuracy"]:.4f}, translated '
        f'(T2) {metrics["test_T2_accuracy"]:.4f}, rotated (SE2) '
        f'{metrics["test_SE2_accuracy"]:.4f}; train '
        f'{result["train_time_s"]:.0f} s; results in {args.out}/')
    return metrics


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
