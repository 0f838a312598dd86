r"""Counting patterns in constellations with a LieTransformer.

The constellation task of the LieTransformer paper (Sec. 5.1): clouds of up
to 34 points, the corners of up to eight patterns (two copies each of a
triangle, a square, a pentagon and an "L"); four heads count the copies of
each shape (0, 1 or 2). Data: :class:`~torch_lie.datasets.Constellation`,
10,000 training and 1,000 test constellations; the test set is also evaluated
moved as a whole by a random translation ("T2") or rigid motion ("SE2"),
where only models invariant to those motions keep their accuracy.

``--model lie`` is a :class:`~torch_lie.nn.LieTransformer` for any ``--group``
acting on the plane (``T2``, ``SE2`` with ``--num-samples`` random lifts,
``SE2-C4``, ``Trivial2``, ...); ``--model transformer`` the non-invariant
baseline (:class:`~torch_lie.nn.models.PointCloudTransformer`). Content
features: each point's sorted distances to the others (``distances``, as the
paper) or ``ones``. Training: cross entropy, Adam with a cosine schedule,
batches of constellations of similar sizes, each processed in chunks of at
most ``--max-pairs`` lifted pairs with accumulated gradients (bounds the
memory of full attention; the training is the same for any value). A
checkpoint after every epoch; ``--resume`` continues a run, ``--overwrite``
replaces it. At the end: the three test accuracies, ``predictions.png`` and
``metrics.json`` in ``--out``::

    python examples/constellation.py --group T2 --out runs/constellation-t2
    python examples/constellation.py --group SE2-C4 --out runs/c4
    python examples/constellation.py --model transformer --out runs/tf
    python examples/constellation.py --summary runs/constellation-t2 runs/tf
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

PARSER = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
add = PARSER.add_argument
add('--model', choices=('lie', 'transformer'), default='lie')
add('--group', default='T2', help='group of the LieTransformer '
    '(default: T2)')
add('--num-samples', type=int, default=1,
    help='lifted elements per point for random lifts (default: 1)')
add('--features', choices=('distances', 'ones'), default='distances')
add('--hidden', type=int, default=128)
add('--layers', type=int, default=4)
add('--heads', type=int, default=8)
add('--kernel-dim', type=int, default=16)
add('--attention', choices=('softmax', 'dot_product'), default='softmax')
add('--epochs', type=int, default=50)
add('--batch-size', type=int, default=100)
add('--eval-batch-size', type=int, default=250)
add('--lr', type=float, default=1e-3)
add('--bucket', action=argparse.BooleanOptionalAction, default=True,
    help='batch constellations of similar sizes (default: on)')
add('--max-pairs', type=int, default=1 << 14,
    help='lifted pairs per forward and backward pass (default: 16384)')
add('--num-train', type=int, default=10_000)
add('--num-test', type=int, default=1_000)
add('--eval-every', type=int, default=1,
    help='test accuracy every this many epochs (0: only at the end)')
add('--seed', type=int, default=0)
add('--data-seed', type=int, default=0)
add('--root', default='data/constellation')
add('--out', default='runs/constellation')
add('--resume', action='store_true', help='continue the run in --out')
add('--overwrite', action='store_true', help='replace the run in --out')
add('--threads', type=int, default=1, help='torch threads (default: 1)')
add('--plot', type=int, default=6, help='test constellations to plot')
add('--no-progress', action='store_true')
add('--summary', nargs='+', metavar='DIR',
    help='print a table of finished runs beside the paper and exit')
add('--markdown', metavar='PATH', help='with --summary: write it here')
add('--pretrained', metavar='NAME', help='evaluate a pretrained model (e.g. '
    'constellation-t2) instead of training one')
add('--save-pretrained', metavar='PATH',
    help='write the trained LieTransformer for from_pretrained')

if __name__ == '__main__':  # --help and usage errors before slow imports
    PARSER.parse_args()

import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader
from tqdm import tqdm

from torch_lie.datasets.constellation import CONSTELLATION_SHAPES, Constellation
from torch_lie.groups import group_resolver
from torch_lie.nn.models import PointCloudTransformer
from torch_lie.pretrained import BUILDERS, from_pretrained, save_pretrained
from torch_lie.training import (
    BucketBatchSampler,
    Checkpointer,
    markdown_table,
    save_json,
    warmup_cosine,
)
from torch_lie.visualization import plot_constellations

SHAPES, COUNTS = len(CONSTELLATION_SHAPES), 3  # 0, 1 or 2 copies per shape
#: The paper's test accuracy (trained on the data as generated): on the test
#: set and on the rotated test set.
PAPER_ACCURACY = {'LieTransformer-T2': (0.75, 0.63),
                  'LieTransformer-SE2': (0.71, 0.69),
                  'Transformer': (0.58, 0.44)}  # the paper's SetTransformer
#: What a resumed run must share with the checkpoint.
RECIPE = ('model', 'group', 'num_samples', 'features', 'hidden', 'layers',
          'heads', 'kernel_dim', 'attention', 'num_train', 'data_seed',
          'batch_size', 'lr', 'seed', 'bucket')


def parse_args(argv=None) -> argparse.Namespace:
    args = PARSER.parse_args(argv)
    for name in ('num_samples', 'hidden', 'layers', 'heads', 'kernel_dim',
                 'epochs', 'batch_size', 'eval_batch_size', 'max_pairs',
                 'num_train', 'num_test', 'threads'):
        if getattr(args, name) < 1:
            PARSER.error(f"--{name.replace('_', '-')} must be >= 1")
    if not args.lr > 0 or args.hidden % args.heads:
        PARSER.error('--lr must be positive and --hidden divisible by --heads')
    if args.save_pretrained and (args.model != 'lie' or args.pretrained):
        PARSER.error('--save-pretrained saves a LieTransformer trained here')
    if args.model == 'lie' and not args.summary:
        try:  # unknown names, groups not acting on the plane
            group_resolver(args.group, space_dim=2).lift_size(
                args.num_samples)
        except ValueError as error:
            PARSER.error(str(error))
        if args.features == 'ones' and args.attention == 'softmax':
            PARSER.error('--features ones with softmax attention: every point '
                         'starts alike and softmax weights sum to one, so the '
                         'output would not depend on the points; use '
                         '--features distances or --attention dot_product')
    return args


def lie_kwargs(args, in_channels: int) -> dict:
    r"""The LieTransformer's arguments (those of the 'lie_transformer'
    builder of :mod:`torch_lie.pretrained`)."""
    return dict(group=args.group, num_samples=args.num_samples,
                in_channels=in_channels, hidden_channels=args.hidden,
                out_channels=SHAPES * COUNTS, num_layers=args.layers,
                heads=args.heads, kernel_dim=args.kernel_dim,
                attention=args.attention)


def build_model(args, in_channels: int) -> torch.nn.Module:
    if args.pretrained:
        return from_pretrained(args.pretrained)
    if args.model == 'transformer':
        return PointCloudTransformer(in_channels, args.hidden, SHAPES * COUNTS,
                                     args.layers, args.heads)
    return BUILDERS['lie_transformer'](**lie_kwargs(args, in_channels))


def batches(dataset, batch_sampler, lift_size: int, max_pairs: int):
    r"""Yields each batch of :obj:`batch_sampler` as consecutive chunks of at
    most :obj:`max_pairs` lifted pairs (the per-pair tensors of full
    attention grow with the square of the lifted points)."""
    sizes = dataset.num_points
    for index in batch_sampler:
        index = torch.tensor(index)
        pairs = (int(sizes[index].max()) * lift_size) ** 2
        chunks = index.split(max(1, max_pairs // pairs))
        loader = DataLoader(dataset, batch_sampler=[c.tolist() for c in chunks])
        yield index, list(zip(chunks, loader))


@torch.no_grad()
def evaluate(model, dataset, args, lift_size: int) -> dict:
    r"""Loss, accuracy (mean over the heads), exact matches and predictions.
    Random lifts draw from a fixed seed (the training's state is kept)."""
    model.eval()
    pred, loss = torch.empty_like(dataset.y), 0.0
    sampler = BucketBatchSampler(dataset.num_points, args.eval_batch_size,
                                 shuffle=False,
                                 bucket=args.bucket)
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        for _, chunks in batches(dataset, sampler, lift_size, args.max_pairs):
            for index, batch in chunks:
                logits = model(batch).view(-1, SHAPES, COUNTS)
                loss += float(F.cross_entropy(logits.flatten(0, 1),
                                              batch.y.flatten(), reduction='sum'))
                pred[index] = logits.argmax(-1)
    correct = (pred == dataset.y).float()
    return {'loss': loss / correct.numel(), 'accuracy': float(correct.mean()),
            'exact_match': float(correct.all(1).float().mean()),
            'accuracy_per_shape': dict(zip(CONSTELLATION_SHAPES,
                                           correct.mean(0).tolist())),
            'pred': pred}


def train(args, model, data, lift_size: int, log) -> dict:
    gen = torch.Generator().manual_seed(args.seed)
    sampler = BucketBatchSampler(data['train'].num_points, args.batch_size,
                                 bucket=args.bucket, generator=gen)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = warmup_cosine(optimizer, args.epochs * len(sampler))
    ckpt = Checkpointer(args.out, {k: getattr(args, k) for k in RECIPE},
                        resume=args.resume, overwrite=args.overwrite)
    state = ckpt.restore(model, optimizer, scheduler, gen)
    history = state.get('history', [])
    if state:
        log(f'resumed from epoch {state["epoch"]} of {ckpt.path}')
    for epoch in range(state.get('epoch', 0) + 1, args.epochs + 1):
        model.train()
        start, total, correct, count = time.perf_counter(), 0.0, 0.0, 0
        bar = tqdm(batches(data['train'], sampler, lift_size, args.max_pairs),
                   total=len(sampler), desc=f'epoch {epoch}/{args.epochs}',
                   leave=False, disable=args.no_progress, file=sys.stdout)
        for index, chunks in bar:
            optimizer.zero_grad()
            for _, batch in chunks:  # the batch's mean loss, accumulated
                logits = model(batch).view(-1, SHAPES, COUNTS)
                loss = F.cross_entropy(logits.flatten(0, 1), batch.y.flatten(),
                                       reduction='sum') / (SHAPES * index.numel())
                loss.backward()
                total += loss.item() * index.numel()
                correct += float((logits.argmax(-1) == batch.y).sum())
            optimizer.step()
            scheduler.step()
            count += index.numel()
            bar.set_postfix(loss=f'{total / count:.3f}')
        if not math.isfinite(total):
            raise FloatingPointError(f'non-finite loss at epoch {epoch}; try a '
                                     f'smaller --lr')
        entry = {'epoch': epoch, 'train_loss': total / count,
                 'train_accuracy': correct / (count * SHAPES),
                 'seconds': time.perf_counter() - start}
        if args.eval_every and (epoch % args.eval_every == 0
                                or epoch == args.epochs):
            entry['test_accuracy'] = evaluate(model, data['test'], args,
                                              lift_size)['accuracy']
        history.append(entry)
        log('  '.join(f'{k} {v:.4g}' for k, v in entry.items()))
        ckpt.save(model, optimizer, scheduler, gen, epoch=epoch,
                  history=history)
    return {'history': history, 'resumed_from_epoch': state.get('epoch')}


def summary(dirs, markdown=None) -> str:
    rows = []
    for run in dirs:
        with open(f'{run}/metrics.json') as f:
            m = json.load(f)
        paper = PAPER_ACCURACY.get(m['model'].split(' (')[0])
        rows.append([f"{m['model']} (`{run}`)", f"{m['parameters']:,}",
                     len(m['history']),
                     f"{statistics.median(h['seconds'] for h in m['history']):.0f} s",
                     *(f"{m[f'{s}_accuracy']:.3f}"
                       for s in ('test', 'test_T2', 'test_SE2')),
                     f"{m['test_accuracy'] - m['test_SE2_accuracy']:+.3f}",
                     '-' if paper is None else '%.2f / %.2f' % paper])
    table = markdown_table(['model', 'parameters', 'epochs', 'median epoch',
                            'test', 'test T2', 'test SE2 (rotated)',
                            'drop under rotation', 'paper: test / rotated'],
                           rows)
    print(table)
    if markdown:
        with open(markdown, 'w') as f:
            f.write(table + '\n')
    return table


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.summary:
        return {'table': summary(args.summary, args.markdown)}
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    common = dict(root=args.root, seed=args.data_seed, log=not args.no_progress,
                  features=None if args.features == 'ones' else 'distances')
    data = {'train': Constellation(split='train', num_samples=args.num_train,
                                   **common)}
    for name, variant in (('test', None), ('test_T2', 'T2'),
                          ('test_SE2', 'SE2')):
        data[name] = Constellation(split='test', variant=variant,
                                   num_samples=args.num_test, **common)
    torch.manual_seed(args.seed)
    model = build_model(args, data['train'].num_features)
    lift = getattr(model, 'lift', None)
    lift_size = 1 if lift is None else lift.lift_size
    name = (f'pretrained {args.pretrained}' if args.pretrained else
            'Transformer' if args.model == 'transformer' else
            f'LieTransformer-{args.group}')
    params = sum(p.numel() for p in model.parameters())
    print(f'{name}: {params:,} parameters', flush=True)
    result = ({'pretrained': args.pretrained, 'history': []}
              if args.pretrained else
              train(args, model, data, lift_size,
                    lambda msg: print(msg, flush=True)))

    metrics = {'model': name, 'args': vars(args), 'parameters': params,
               **result}
    preds = {}
    for split in ('test', 'test_T2', 'test_SE2'):
        res = evaluate(model, data[split], args, lift_size)
        preds[split] = res.pop('pred')
        metrics.update({f'{split}_{k}': v for k, v in res.items()})
    if args.plot:
        metrics['plot'] = f'{args.out}/predictions.png'
        plot_constellations(metrics['plot'], data['test'], preds['test'],
                            min(args.plot, args.num_test),
                            f"{name}: test accuracy "
                            f"{metrics['test_accuracy']:.3f}")
    save_json(metrics, f'{args.out}/metrics.json')
    if args.save_pretrained:
        save_pretrained(model, args.save_pretrained, 'lie_transformer',
                        lie_kwargs(args, data['train'].num_features),
                        'python examples/constellation.py ' +
                        ' '.join(sys.argv[1:] if argv is None else argv),
                        {k: metrics[k] for k in ('test_accuracy',
                                                 'test_T2_accuracy',
                                                 'test_SE2_accuracy')})
    print(f"{name}: test accuracy {metrics['test_accuracy']:.4f}, translated "
          f"{metrics['test_T2_accuracy']:.4f}, rotated "
          f"{metrics['test_SE2_accuracy']:.4f}; results in {args.out}/")
    return metrics


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # names the fix
        sys.exit(f'error: {error}')
