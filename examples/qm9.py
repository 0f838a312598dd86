r"""QM9 molecular property regression with a LieTransformer (paper Sec. 5.2).

Data: PyG's :class:`~torch_geometric.datasets.QM9` (downloaded into ``--root``
on first use), one of the paper's 12 targets in its units, its 15 atom
features and its seeded 100,000 / 17,748 / 13,083 split
(:mod:`torch_lie.datasets.qm9`). The model owns its lift: molecules are
lifted in the data loader, or with ``--lift-on-device`` (the GPU default) by
the model, batch by batch; T(3) models train with random rotations. L1 loss
on the standardised target, Adam with a warm-up and a cosine schedule, the
best validation epoch tested at the end beside the paper's number. A
checkpoint after every epoch; ``--resume`` continues a run, ``--overwrite``
replaces it. Launched by ``torchrun`` it trains data-parallel (one process
per GPU, or per share of the CPU with ``--device cpu``; ``--batch-size`` is
the global batch, and every number of processes sees the same batches)::

    python examples/qm9.py --target homo --group SE3 --device cuda
    python examples/qm9.py --target U0 --group T3 --r 5.0 --out runs/u0
    python examples/qm9.py --target homo --hidden 64 --layers 2 --epochs 2
    torchrun --nproc_per_node 4 examples/qm9.py --target homo --device cuda
    python examples/qm9.py predict --checkpoint runs/qm9/best.pt mol.xyz
"""
import argparse
import math
import sys
import time

PARSER = argparse.ArgumentParser(
    description=__doc__.split('\n\n')[0],
    epilog="'qm9.py predict -h': predictions from a checkpoint")
PREDICT = argparse.ArgumentParser(
    prog='qm9.py predict', description='Predicts the target of molecule '
    'files (any format ASE reads) with a checkpoint of qm9.py; model options '
    'given must match it.')


def add_model_args(parser, defaults: bool):
    def add(*names, default=None, **kwargs):  # predict: no defaults
        parser.add_argument(*names, default=default if defaults else None,
                            **kwargs)

    add('--target', default='homo', help='mu, alpha, homo, lumo, gap, r2, '
        'zpve, U0, U, H, G or Cv (default: homo)')
    add('--group', default='SE3', help='group of the lift (default: SE3)')
    add('--num-lift-samples', type=int,
        help='lifted elements per atom (default: 4, or 1 for T3)')
    add('--r', type=float, help='neighbourhood radius in Å (default: all)')
    add('--max-num-neighbors', type=int)
    add('--hidden', type=int, default=1504)
    add('--layers', type=int, default=6)
    add('--heads', type=int, default=8)
    add('--kernel-dim', type=int, default=16)
    add('--pool', default='mean', choices=('mean', 'sum', 'max'))
    add('--attention', default='softmax', choices=('softmax', 'dot_product'))
    parser.add_argument('--device', help='(default: cuda if available)')


add_model_args(PARSER, defaults=True)
add_model_args(PREDICT, defaults=False)
add = PARSER.add_argument
add('--root', default='data/QM9')
add('--epochs', type=int, default=500)
add('--batch-size', type=int, default=100)
add('--lr', type=float, default=1e-3)
add('--warmup', type=float, default=0.01, help='warm-up fraction of steps')
add('--augment', action=argparse.BooleanOptionalAction,
    help='random rotations of the training molecules (default: T3 only)')
add('--split-sizes', type=int, nargs=3, metavar=('TRAIN', 'VAL', 'TEST'))
add('--seed', type=int, default=0)
add('--out', default='runs/qm9')
add('--resume', action='store_true', help='continue the run in --out')
add('--overwrite', action='store_true', help='replace the run in --out')
add('--num-workers', type=int, default=0)
add('--lift-on-device', action=argparse.BooleanOptionalAction,
    help='lift whole batches on --device (default: on for GPUs)')
add('--threads', type=int, default=1, help='torch threads (default: 1)')
add('--no-progress', action='store_true')
PREDICT.add_argument('--checkpoint', required=True, help='best.pt of a run')
PREDICT.add_argument('files', nargs='+')
PREDICT.add_argument('--index', type=int, default=-1,
                     help='structure of multi-structure files (default: last)')
PREDICT.add_argument('--samples', type=int, default=1,
                     help='average over this many random lifts')


def parse(argv):
    if argv[:1] == ['predict']:
        return PREDICT, PREDICT.parse_args(argv[1:])
    return PARSER, PARSER.parse_args(argv)


if __name__ == '__main__':  # --help and usage errors before slow imports
    parse(sys.argv[1:])

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from torch_geometric.datasets import QM9
from torch_geometric.loader import DataLoader
from torch_geometric.transforms import Compose
from tqdm import tqdm

from torch_lie.datasets.qm9 import (
    QM9Features,
    QM9Target,
    qm9_features,
    qm9_split,
    qm9_target_info,
    qm9_targets,
)
from torch_lie.groups import T, group_resolver
from torch_lie.io.ase import atoms_to_data, read_molecule
from torch_lie.nn import LieTransformer
from torch_lie.training import (
    Checkpointer,
    init_distributed,
    read_checkpoint,
    save_json,
    warmup_cosine,
)
from torch_lie.training.checkpoint import config_differences
from torch_lie.transforms import Lift
from torch_lie.transforms.random_rotation import RandomRotation
from torch_lie.utils import check_device

#: The paper's test MAE (Table 2), in the units of the targets.
PAPER_MAE = {
    'LieTr-T3+aug': {'alpha': 0.082, 'gap': 51, 'homo': 33, 'lumo': 27,
                     'mu': 0.041, 'Cv': 0.035, 'G': 19, 'H': 17, 'r2': 0.448,
                     'U': 16, 'U0': 17, 'zpve': 2.10},
    'LieTr-SE3': {'alpha': 0.104, 'gap': 52, 'homo': 33, 'lumo': 29,
                  'mu': 0.061, 'Cv': 0.041, 'G': 23, 'H': 27, 'r2': 2.29,
                  'U': 26, 'U0': 26, 'zpve': 3.55},
}
MODEL = ('target', 'group', 'num_lift_samples', 'r', 'max_num_neighbors',
         'hidden', 'layers', 'heads', 'kernel_dim', 'pool', 'attention')
RECIPE = MODEL + ('batch_size', 'lr', 'warmup', 'seed', 'split_sizes',
                  'augment')


def make_config(args) -> dict:
    r"""What defines the run, with the defaults that depend on the group."""
    group = group_resolver(args.group)
    config = {key: getattr(args, key) for key in RECIPE}
    config['target'] = qm9_target_info(args.target).name
    if args.num_lift_samples is None:
        config['num_lift_samples'] = 1 if group.deterministic else 4
    if args.augment is None:  # no rotations in the group: augment
        config['augment'] = isinstance(group, T)
    return config


def build_model(config: dict) -> LieTransformer:
    lift = Lift(config['group'], config['num_lift_samples'], r=config['r'],
                max_num_neighbors=config['max_num_neighbors'])
    return LieTransformer(15, config['hidden'], 1, lift=lift,
                          num_layers=config['layers'], heads=config['heads'],
                          kernel_dim=config['kernel_dim'],
                          attention=config['attention'], pool=config['pool'])


def paper_row(config: dict):
    group = group_resolver(config['group'])
    if isinstance(group, T):
        return 'LieTr-T3+aug'
    return 'LieTr-SE3' if type(group).__name__ == 'SE3' else None


@torch.no_grad()
def evaluate(model, loader, mean: float, std: float, ctx) -> float:
    r"""MAE in the target's unit over the molecules of all processes."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(ctx.device)
        pred = model(batch).view(-1).double() * std + mean
        total += float((pred - batch.y.view(-1).double()).abs().sum())
        count += batch.num_graphs
    total, count = ctx.all_reduce_sum(total, count)
    return total / max(count, 1)


def train(args, ctx) -> dict:
    config, world = make_config(args), ctx.world_size
    info = qm9_target_info(config['target'])
    if args.batch_size % world:
        raise ValueError(f'--batch-size ({args.batch_size}) must be '
                         f'divisible by the number of processes ({world})')
    log = print if ctx.is_main else (lambda *a, **k: None)
    torch.manual_seed(args.seed)
    net = build_model(config).to(ctx.device)
    lift_on_device = (ctx.device.type != 'cpu' if args.lift_on_device is None
                      else args.lift_on_device)
    with ctx.main_process_first():  # PyG processes QM9 on first use
        dataset = QM9(args.root)
    target, features = QM9Target(config['target']), QM9Features()
    lift = [] if lift_on_device else [net.lift]
    rotate = [RandomRotation()] if config['augment'] else []
    splits = [dataset.index_select(i) for i in
              qm9_split(len(dataset), args.seed, args.split_sizes)]
    splits[0].transform = Compose([target, features] + rotate + lift)
    splits[1].transform = splits[2].transform = Compose([target, features] +
                                                        lift)
    y = qm9_targets(splits[0], info)
    mean, std = float(y.mean()), float(y.std()) if len(y) > 1 else 1.0
    std = std or 1.0
    log(f"QM9 '{info.name}' ({info.unit}): "
        f"{' / '.join(str(len(s)) for s in splits)} train / val / test")

    # Global batch k is the k-th batch of every process.
    sampler = DistributedSampler(splits[0], world, ctx.rank, seed=args.seed)
    kwargs = dict(batch_size=args.batch_size // world,
                  num_workers=args.num_workers)
    loader = DataLoader(splits[0], sampler=sampler, **kwargs)
    val, test = (DataLoader(s[ctx.rank::world], **kwargs) for s in splits[1:])
    params = sum(p.numel() for p in net.parameters())
    log(f'{params:,} parameters; {world} process(es) of batch '
        f'{args.batch_size // world}')
    torch.manual_seed(args.seed + ctx.rank)  # same weights, own draws
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    total = args.epochs * len(loader)
    scheduler = warmup_cosine(optimizer, total,
                              max(1, round(args.warmup * total)))
    ckpt = Checkpointer(args.out, config, resume=args.resume,
                        overwrite=args.overwrite, ctx=ctx)
    state = ckpt.restore(net, optimizer, scheduler)
    if state:
        log(f"resumed from epoch {state['epoch']} of {ckpt.path}")
        if ckpt.saved_world_size != world:
            log(f'the checkpoint was written by {ckpt.saved_world_size} '
                f'process(es), resuming with {world}: the random draws '
                f'differ from those of an uninterrupted run')
    history = state.get('history', [])
    best = state.get('best', {'val_mae': math.inf, 'epoch': 0})
    model = net
    if ctx.is_distributed:  # broadcasts rank 0's weights
        model = DistributedDataParallel(
            net, device_ids=[ctx.device] if ctx.device.type == 'cuda' else
            None)
    for epoch in range(state.get('epoch', 0) + 1, args.epochs + 1):
        model.train()
        sampler.set_epoch(epoch - 1)
        start, loss_sum, count = time.perf_counter(), 0.0, 0
        for batch in tqdm(loader, desc=f'epoch {epoch}/{args.epochs}',
                          leave=False, disable=args.no_progress or
                          not ctx.is_main):
            batch = batch.to(ctx.device)
            target = (batch.y.view(-1) - mean) / std
            loss = (model(batch).view(-1) - target).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss) * batch.num_graphs
            count += batch.num_graphs
        loss_sum, count = ctx.all_reduce_sum(loss_sum, count)
        val_mae = evaluate(net, val, mean, std, ctx)
        history.append({'epoch': epoch, 'train_loss': loss_sum / count,
                        'val_mae': val_mae,
                        'seconds': time.perf_counter() - start})
        if val_mae < best['val_mae']:  # the same in every process
            best = {'val_mae': val_mae, 'epoch': epoch}
            ckpt.save_best(net, target_mean=mean, target_std=std)
        ckpt.save(net, optimizer, scheduler, epoch=epoch, history=history,
                  best=best)
        log(f"epoch {epoch}: train L1 {loss_sum / count:.4f} (std. units), "
            f"val MAE {val_mae:.4g} {info.unit}")
    ctx.barrier()  # best.pt is written
    ckpt.load_best(net)
    row = paper_row(config)
    metrics = {'config': config, 'parameters': params, 'history': history,
               'best_epoch': best['epoch'], 'best_val_mae': best['val_mae'],
               'test_mae': evaluate(net, test, mean, std, ctx),
               'unit': info.unit, 'paper_row': row, 'world_size': world,
               'paper_mae': PAPER_MAE[row][info.name] if row else None}
    log(f"test MAE {info.name}: {metrics['test_mae']:.4g} {info.unit}" +
        (f"; paper {row}: {metrics['paper_mae']:g} {info.unit}" if row
         else ''))
    if ctx.is_main:
        save_json(metrics, f'{args.out}/metrics.json')
    return metrics


def predict(args) -> list:
    state = read_checkpoint(args.checkpoint, 'pass best.pt of a qm9.py run')
    if 'target_mean' not in state:
        raise ValueError(f"'{args.checkpoint}' is not the best.pt of a "
                         f"qm9.py run")
    config = state['config']
    requested = {k: getattr(args, k) for k in MODEL
                 if getattr(args, k) is not None}
    diff = config_differences({k: config[k] for k in requested}, requested)
    if diff:
        raise ValueError(f"'{args.checkpoint}' holds a model with {diff}")
    model = build_model(config)
    model.load_state_dict(state['model'])
    model.to(args.device).eval()
    info, results = qm9_target_info(config['target']), []
    for path in args.files:
        atoms = read_molecule(path, index=args.index)
        try:
            data = atoms_to_data(atoms, features=qm9_features).to(args.device)
        except ValueError as error:
            raise ValueError(f"'{path}': {error}") from None
        with torch.no_grad():  # averaged over random lifts
            value = sum(float(model(data)) for _ in range(args.samples))
        value = value / args.samples * state['target_std'] + \
            state['target_mean']
        print(f'{path}: {info.name} = {value:.6g} {info.unit} '
              f'({atoms.get_chemical_formula()})')
        results.append({'file': str(path), 'target': info.name,
                        'value': value, 'unit': info.unit})
    return results


def main(argv=None):
    parser, args = parse(sys.argv[1:] if argv is None else list(argv))
    args.device = args.device or ('cuda' if torch.cuda.is_available() else
                                  'cpu')
    try:
        check_device(args.device)
        if args.group is not None:
            group_resolver(args.group)
        if args.target is not None:
            qm9_target_info(args.target)
    except ValueError as error:
        parser.error(str(error))
    counts = ('samples', ) if parser is PREDICT else ('epochs', 'batch_size',
                                                      'threads')
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if parser is PREDICT:
        return predict(args)
    torch.set_num_threads(args.threads)
    with init_distributed(args.device) as ctx:  # joins a torchrun launch
        return train(args, ctx)


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # names the fix
        sys.exit(f'error: {error}')
