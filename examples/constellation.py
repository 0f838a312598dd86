r"""Counting patterns in constellations with a LieTransformer.

The task of the LieTransformer paper's Sec. 5.1
(:class:`~torch_lie.datasets.Constellation`): four heads count the copies
of four shapes in clouds of points. The test set is also moved by a random
translation ("T2") or rigid motion ("SE2"), where only models invariant to
them keep their accuracy; ``--augment`` trains on constellations moved
by random rigid motions instead. Batches are processed in chunks of at most
``--max-pairs`` lifted pairs (the same training for any value). Results
(accuracies, ``predictions.png``, ``metrics.json``) go to ``--out``::

    python examples/constellation.py --group T2 --out runs/constellation-t2
    python examples/constellation.py --group SE2-C4 --out runs/c4
    python examples/constellation.py --paper-layout --hidden 512 --layers 6 \
        --epochs 20 --lr 3e-4 --out runs/paper    # the paper's model
    python examples/constellation.py --model transformer --out runs/tf
    python examples/constellation.py --model transformer --augment --out runs/tf-aug
    python examples/constellation.py --summary runs/constellation-t2 runs/tf
"""
import argparse
import os
import statistics
from pathlib import Path

PARSER = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
add = PARSER.add_argument
add('--model', choices=('lie', 'transformer'), default='lie')
add('--group', default='T2', help='group of the LieTransformer (default: T2)')
add('--num-samples', type=int, default=1, help='lifted elements per point')
add('--features', choices=('distances', 'ones'), default='distances')
add('--augment', action='store_true',
    help='train on constellations moved by random rigid motions (SE2)')
add('--paper-layout', action='store_true',
    help="the original's layout (LieTransformer.paper('constellation'))")
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
add('--max-pairs', type=int, default=1 << 14, help='lifted pairs per pass')
add('--num-train', type=int, default=10_000)
add('--num-test', type=int, default=1_000)
add('--eval-every', type=int, default=1, help='test every N epochs (0: end)')
add('--seed', type=int, default=0)
add('--data-seed', type=int, default=0)
add('--root', default='data/constellation')
add('--out', default='runs/constellation')
add('--resume', action='store_true', help='continue the run in --out')
add('--overwrite', action='store_true', help='replace the run in --out')
add('--threads', type=int, default=1, help='torch threads (default: 1)')
add('--plot', type=int, default=6, help='test constellations to plot')
add('--no-progress', action='store_true')
add('--summary', nargs='+', metavar='DIR', help='tabulate finished runs')
add('--markdown', metavar='PATH', help='with --summary: write it here')
add('--pretrained', metavar='NAME', help='evaluate constellation-t2 or a file')
add('--save-pretrained', metavar='PATH', help='save it for from_pretrained')

if __name__ == '__main__':  # --help and usage errors before slow imports
    PARSER.parse_args()

import torch
import torch.nn.functional as F

from torch_lie.datasets.constellation import CONSTELLATION_SHAPES, Constellation
from torch_lie.groups import group_resolver
from torch_lie.nn.models import PointCloudTransformer
from torch_lie.pretrained import BUILDERS, from_pretrained, save_pretrained
from torch_lie.training import (
    BucketBatchSampler,
    Checkpointer,
    ChunkedLoader,
    check_counts,
    check_out,
    exit_on_error,
    fit,
    load_runs,
    markdown_table,
    save_json,
    warmup_cosine,
)
from torch_lie.transforms import RandomMotion
from torch_lie.visualization import plot_constellations

SHAPES, COUNTS = len(CONSTELLATION_SHAPES), 3  # 0, 1 or 2 copies per shape
#: The paper's accuracy on the test set and on the rotated test set.
PAPER_ACCURACY = {'LieTransformer-T2': (0.75, 0.63),
                  'LieTransformer-SE2': (0.71, 0.69),
                  'Transformer': (0.58, 0.44)}  # the paper's SetTransformer
TESTS = {'test': None, 'test_T2': 'T2', 'test_SE2': 'SE2'}  # moved by T(2), SE(2)
#: What a resumed run must share with the checkpoint.
RECIPE = ('model', 'group', 'num_samples', 'features', 'augment', 'paper_layout',
          'hidden', 'layers', 'heads', 'kernel_dim', 'attention', 'num_train',
          'data_seed', 'batch_size', 'lr', 'seed', 'bucket')


def parse_args(argv=None) -> argparse.Namespace:
    args = PARSER.parse_args(argv)
    check_counts(PARSER, args, ('num_samples', 'hidden', 'layers', 'heads',
                                'kernel_dim', 'epochs', 'batch_size', 'eval_batch_size',
                                'max_pairs', 'num_train', 'num_test', 'threads'))
    check_out(PARSER, args.out)
    if not args.lr > 0 or args.hidden % args.heads:
        PARSER.error('--lr must be positive and --hidden divisible by --heads')
    if args.save_pretrained and (args.model != 'lie' or args.pretrained):
        PARSER.error('--save-pretrained saves a LieTransformer trained here')
    if args.paper_layout and (args.model != 'lie' or args.pretrained):
        PARSER.error('--paper-layout builds a LieTransformer to train here')
    if args.model == 'lie' and not args.summary:
        try:  # unknown names, groups not acting on the plane
            group_resolver(args.group, space_dim=2).lift_size(args.num_samples)
        except ValueError as error:
            PARSER.error(str(error))
        if args.features == 'ones' and args.attention == 'softmax':
            PARSER.error('--features ones with softmax attention: the output '
                         'cannot depend on the points; use --features '
                         'distances or --attention dot_product')
    return args


def lie_kwargs(args, in_channels: int) -> dict:
    # The arguments of torch_lie.pretrained's 'lie_transformer' builder.
    return dict(group=args.group, num_samples=args.num_samples, in_channels=in_channels,
                hidden_channels=args.hidden, out_channels=SHAPES * COUNTS,
                num_layers=args.layers, heads=args.heads, kernel_dim=args.kernel_dim,
                attention=args.attention,
                paper_layout=args.paper_layout and 'constellation')


def build_model(args, in_channels: int) -> torch.nn.Module:
    if args.pretrained:
        return from_pretrained(args.pretrained)
    if args.model == 'transformer':
        return PointCloudTransformer(in_channels, args.hidden, SHAPES * COUNTS,
                                     args.layers, args.heads)
    return BUILDERS['lie_transformer'](**lie_kwargs(args, in_channels))


def loader(dataset, batch_size, lift_size, args, **kwargs) -> ChunkedLoader:
    # Batches of similar sizes, in chunks of at most --max-pairs lifted pairs.
    sampler = BucketBatchSampler(dataset.num_points, batch_size,
                                 bucket=args.bucket, **kwargs)
    return ChunkedLoader(dataset, sampler,
                         (dataset.num_points * lift_size)**2, args.max_pairs)


def cross_entropy(logits, y):
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction='sum')


@torch.no_grad()
def evaluate(model, dataset, args, lift_size: int) -> dict:
    # Random lifts draw from a fixed seed; the training's state is kept.
    model.eval()
    pred, loss = torch.empty_like(dataset.y), 0.0
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        for _, chunks in loader(dataset, args.eval_batch_size, lift_size,
                                args, shuffle=False):
            for index, batch in chunks:
                logits = model(batch).view(-1, SHAPES, COUNTS)
                loss += float(cross_entropy(logits, batch.y))
                pred[index] = logits.argmax(-1)
    return {'loss': loss / pred.numel(), **dataset.score(pred), 'pred': pred}


def train(args, model, data, lift_size: int) -> dict:
    gen = torch.Generator().manual_seed(args.seed)
    batches = loader(data['train'], args.batch_size, lift_size, args,
                     generator=gen)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    def step(batch):  # the batch's mean loss, accumulated over its chunks
        index, chunks = batch
        loss = correct = 0.0
        for _, chunk in chunks:
            logits = model(chunk).view(-1, SHAPES, COUNTS)
            part = cross_entropy(logits, chunk.y) / (SHAPES * index.numel())
            part.backward()
            loss += part.item() * index.numel()
            correct += float((logits.argmax(-1) == chunk.y).sum()) / SHAPES
        return index.numel(), {'loss': loss, 'accuracy': correct}

    ckpt = Checkpointer(args.out, {k: getattr(args, k) for k in RECIPE},
                        resume=args.resume, overwrite=args.overwrite)
    scheduler = warmup_cosine(optimizer, args.epochs * len(batches))
    return fit(model, batches, step, optimizer, scheduler, args.epochs, ckpt,
               evaluate=lambda: {'test_accuracy': evaluate(
                   model, data['test'], args, lift_size)['accuracy']},
               eval_every=args.eval_every or args.epochs, generator=gen,
               progress=not args.no_progress)


def summary(dirs, markdown=None) -> str:
    runs, rows = load_runs(dirs), []
    for run, m in runs.items():
        augment = m['args'].get('augment', False)  # absent from older runs
        # The paper's numbers are for training on the data as generated.
        paper = None if augment else PAPER_ACCURACY.get(m['model'])
        acc = [m[f'test{s}_accuracy'] for s in ('', '_T2', '_SE2')]
        epoch = statistics.median([h['seconds'] for h in m['history']] or [0])
        rows.append([f"{m['model']} (`{run}`)", m['args']['features'],
                     'SE2-augmented' if augment else 'as generated',
                     f"{m['parameters']:,}", len(m['history']), f'{epoch:.0f} s',
                     *(f'{a:.3f}' for a in acc), f'{acc[0] - acc[2]:+.3f}',
                     '-' if paper is None else '%.2f / %.2f' % paper])
    table = markdown_table(['model', 'features', 'training data', 'parameters',
                            'epochs', 'median epoch', 'test', 'test T2',
                            'test SE2 (rotated)', 'drop under rotation',
                            'paper: test / rotated'], rows)
    # Where rotation costs accuracy: the training's rotations (+-0.33 pi)
    # cover every orientation of the polygons, of the L only a third.
    shapes = list(CONSTELLATION_SHAPES)
    table += '\n\nAccuracy per shape, test / rotated test:\n\n' + markdown_table(
        ['run', *shapes], [[f'`{run}`', *('%.3f / %.3f' % (
            m['test_accuracy_per_shape'][s], m['test_SE2_accuracy_per_shape'][s])
            for s in shapes)] for run, m in runs.items()])
    print(table)
    if markdown:
        Path(markdown).write_text(table + '\n')
    return table


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.summary:
        return {'table': summary(args.summary, args.markdown)}
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    common = dict(root=args.root, seed=args.data_seed, log=not args.no_progress,
                  features=None if args.features == 'ones' else 'distances')
    data = {split: Constellation(split='test', variant=variant,
                                 num_samples=args.num_test, **common)
            for split, variant in TESTS.items()}
    augment = RandomMotion('SE2') if args.augment else None
    data['train'] = Constellation(num_samples=args.num_train, transform=augment,
                                  **common)
    torch.manual_seed(args.seed)
    model = build_model(args, data['train'].num_features)
    lift_size = model.lift.lift_size if hasattr(model, 'lift') else 1
    name = (f'pretrained {args.pretrained}' if args.pretrained else
            'Transformer' if args.model == 'transformer' else
            f'LieTransformer-{args.group}')
    params = sum(p.numel() for p in model.parameters())
    print(f'{name}: {params:,} parameters', flush=True)
    result = ({'pretrained': args.pretrained, 'history': []}
              if args.pretrained else train(args, model, data, lift_size))

    metrics = {'model': name, 'args': vars(args), 'parameters': params, **result}
    preds = {}
    for split in TESTS:
        res = evaluate(model, data[split], args, lift_size)
        preds[split] = res.pop('pred')
        metrics.update({f'{split}_{k}': v for k, v in res.items()})
    accuracies = {f'{s}_accuracy': metrics[f'{s}_accuracy'] for s in TESTS}
    if args.plot:
        plot_constellations(f'{args.out}/predictions.png', data['test'],
                            preds['test'], min(args.plot, args.num_test),
                            f"{name}: test accuracy {accuracies['test_accuracy']:.3f}")
    save_json(metrics, f'{args.out}/metrics.json')
    if args.save_pretrained:
        save_pretrained(model, args.save_pretrained, 'lie_transformer',
                        lie_kwargs(args, data['train'].num_features),
                        accuracies)
    print(f'{name}: accuracy ' + ', '.join(f"{s} {metrics[f'{s}_accuracy']:.4f}"
                                           for s in TESTS) + f'; in {args.out}/')
    return metrics


if __name__ == '__main__':
    exit_on_error(main)
