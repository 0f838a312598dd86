r"""QM9 molecular property regression with a LieTransformer (paper Sec. 5.2).

PyG's :class:`~torch_geometric.datasets.QM9` in ``--root``, written there
offline from the registry package qm9pack on first use
(:func:`~torch_lie.datasets.prepare_qm9`; ``pip install 'torch-lie[qm9]'``),
one of the paper's 12 targets, the paper's split
(:func:`~torch_lie.datasets.qm9.qm9_paper_splits`), L1 loss on the
standardised target, the best validation epoch tested beside the paper.
Launched by ``torchrun`` it trains data-parallel (``--batch-size`` is the
global batch: the same batches for any number of processes)::

    python examples/qm9.py --target homo --group SE3 --device cuda
    python examples/qm9.py --target homo --hidden 64 --layers 2 --epochs 2
    torchrun --nproc_per_node 4 examples/qm9.py --target homo --device cuda
    python examples/qm9.py predict --checkpoint runs/qm9/best.pt mol.xyz
"""
import argparse
import math
import os
import resource
import sys

PARSER = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 epilog="'qm9.py predict -h': predictions")
PREDICT = argparse.ArgumentParser(prog='qm9.py predict', description='Predicts from '
                                  'a best.pt; model options given must match it.')


def add_model_args(parser, defaults: bool):
    def add(*names, default=None, **kwargs):  # predict: no defaults
        parser.add_argument(*names, default=default if defaults else None, **kwargs)

    add('--model', default='lie', choices=tuple(DEFAULTS), help="the LieTransformer "
        "(default), or PyG's SchNet or DimeNet++ on the same data, loss and recipe")
    add('--target', default='homo', help='mu, alpha, homo, lumo, gap, r2, zpve, U0, '
        'U, H, G or Cv')
    add('--group', help='group of the lift (default: SE3)')
    add('--num-lift-samples', type=int, help='per atom (default: 4, or 1 for T3)')
    add('--r', type=float, help='neighbourhood radius or cutoff in Å (default: all '
        'atoms; SchNet 10, DimeNet++ 5)')
    add('--max-num-neighbors', type=int)
    add('--hidden', type=int, help='width (default: 1504; SchNet, DimeNet++ 128)')
    add('--layers', type=int, help='blocks (default: 6; DimeNet++ 4)')
    add('--heads', type=int, help='(default: 8)')
    add('--kernel-dim', type=int, help='(default: 16)')
    add('--pool', choices=('mean', 'sum', 'max'), help='(default: mean)')
    add('--attention', choices=('softmax', 'dot_product'), help='(default: softmax)')
    add('--paper-layout', action='store_true', default=False, help="the paper's "
        "model, LieTransformer.paper('qm9_paper'): SE(3) quaternion lifts x4, 25 of "
        "the 52 nearest elements, kernel '2232', dot-product attention, a head per "
        "element (resized by --hidden, --layers, --heads), and Adam betas 0.5 0.9")
    parser.add_argument('--device', help='(default: cuda if available)')


# Each model's defaults; the LieTransformer's flags that others do not take.
DEFAULTS = {
    'lie': dict(group='SE3', hidden=1504, layers=6, heads=8, kernel_dim=16,
                pool='mean', attention='softmax', r=None),
    'schnet': dict(hidden=128, layers=6, r=10.0),
    'dimenet++': dict(hidden=128, layers=4, r=5.0),
}
LIE_ONLY = ('group', 'num_lift_samples', 'max_num_neighbors', 'heads', 'kernel_dim',
            'pool', 'attention', 'lift_on_device', 'paper_layout')
# What --paper-layout sets (the preset's lift and kernel).
PAPER_SET = ('group', 'num_lift_samples', 'r', 'max_num_neighbors', 'kernel_dim',
             'pool', 'attention')


add_model_args(PARSER, defaults=True)
add_model_args(PREDICT, defaults=False)
add = PARSER.add_argument
add('--root', default='data/QM9')
add('--epochs', type=int, default=500)
add('--batch-size', type=int, default=100)
add('--lr', type=float, default=1e-3)
add('--betas', type=float, nargs=2, help="Adam's (default: 0.9 0.999; with "
    "--paper-layout 0.5 0.9)")
add('--warmup', type=float, default=0.01, help='warm-up fraction of steps')
add('--augment', action=argparse.BooleanOptionalAction, help='default: T3 only')
add('--split-seed', type=int, default=0, help="of the paper's split (default: 0)")
add('--split-sizes', type=int, nargs=3, metavar=('TRAIN', 'VAL', 'TEST'),
    help="(default: the paper's 100,000 / 17,748 / 13,083, scaled to the data)")
add('--n-train', type=int, help='first molecules of the training split (default: all)')
add('--n-val', type=int, help='first molecules of the validation split (default: all)')
add('--eval-every', type=int, default=1, help='epochs between validations')
add('--seed', type=int, default=0, help='of the weights and batches (default: 0)')
add('--out', default='runs/qm9')
add('--resume', action='store_true', help='continue the run in --out')
add('--overwrite', action='store_true', help='replace the run in --out')
add('--num-workers', type=int, default=0)
add('--lift-on-device', action=argparse.BooleanOptionalAction, help='default: GPUs')
add('--threads', type=int, default=1, help='torch threads (default: 1)')
add('--pretrained', metavar='NAME', help='test a shipped model (e.g. qm9-homo-t3) '
    'or a file of save_pretrained on its split instead of training')
add('--save-pretrained', metavar='PATH', help='save the trained LieTransformer '
    'for torch_lie.pretrained.from_pretrained')
add('--no-progress', action='store_true')
WHICH = PREDICT.add_mutually_exclusive_group(required=True)
WHICH.add_argument('--checkpoint', help='best.pt of a run')
WHICH.add_argument('--pretrained', metavar='NAME', help='a shipped model (e.g. '
                   'qm9-homo-t3) or a file of save_pretrained')
PREDICT.add_argument('files', nargs='+', help='molecules in any format ASE reads')
PREDICT.add_argument('--index', type=int, default=-1, help='in multi-structure files')
PREDICT.add_argument('--samples', type=int, default=1, help='random lifts to average')
PREDICT.add_argument('--seed', type=int, default=0, help='of the random lifts')


def parse(argv):
    if argv[:1] == ['predict']:
        return PREDICT, PREDICT.parse_args(argv[1:])
    return PARSER, PARSER.parse_args(argv)


if __name__ == '__main__':  # --help and usage errors before slow imports
    parse(sys.argv[1:])

import torch
from torch.utils.data import DistributedSampler
from torch_geometric.datasets import QM9
from torch_geometric.loader import DataLoader
from torch_geometric.nn.models import DimeNetPlusPlus, SchNet, dimenet

from torch_lie.datasets import prepare_qm9
from torch_lie.datasets.qm9 import (
    qm9_features,
    qm9_paper_mae,
    qm9_paper_splits,
    qm9_target_info,
    qm9_targets,
)
from torch_lie.groups import T, group_resolver
from torch_lie.io.ase import atoms_to_data, read_molecule
from torch_lie.pretrained import (
    BUILDERS,
    from_pretrained,
    pretrained_info,
    save_pretrained,
)
from torch_lie.training import (
    Checkpointer,
    check_counts,
    check_out,
    exit_on_error,
    fit,
    init_distributed,
    read_checkpoint,
    save_json,
    warmup_cosine,
)
from torch_lie.training.checkpoint import config_differences
from torch_lie.utils import check_device, radius_graph

MODEL = ('model', 'paper_layout', 'target', 'group', 'num_lift_samples', 'r',
         'max_num_neighbors', 'hidden', 'layers', 'heads', 'kernel_dim', 'pool',
         'attention')
RECIPE = MODEL + ('batch_size', 'lr', 'betas', 'warmup', 'seed', 'split_seed',
                  'split_sizes', 'n_train', 'n_val', 'eval_every', 'augment')


def make_config(args) -> dict:  # the run, with the defaults of its model and group
    config = {key: getattr(args, key) for key in RECIPE}
    config['target'] = qm9_target_info(args.target).name
    if config['betas'] is None:
        config['betas'] = [0.5, 0.9] if args.paper_layout else [0.9, 0.999]
    if not args.paper_layout:  # the preset's sizes, unless resized
        for key, value in DEFAULTS[args.model].items():
            config[key] = value if config[key] is None else config[key]
    if args.model != 'lie' or args.paper_layout:  # invariant: augment if asked
        config['augment'] = bool(args.augment)
        return config
    group = group_resolver(config['group'])
    if args.num_lift_samples is None:
        config['num_lift_samples'] = 1 if group.deterministic else 4
    if args.augment is None:  # no rotations in the group: augment
        config['augment'] = isinstance(group, T)
    return config


class PyGModel(torch.nn.Module):
    r"""One of PyG's molecular models, called on a batch as ours are."""
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, data) -> torch.Tensor:
        return self.model(data.z, data.pos, data.batch)


class RadiusGraph(torch.nn.Module):
    r"""SchNet's interaction graph from :func:`torch_lie.utils.radius_graph`
    (PyG's own needs pyg-lib or torch-cluster)."""
    def __init__(self, r: float):
        super().__init__()
        self.r = r

    def forward(self, pos, batch):
        edge_index = radius_graph(pos, self.r, batch)
        return edge_index, (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)


def build_model(c: dict) -> torch.nn.Module:
    if c['model'] == 'schnet':
        return PyGModel(SchNet(c['hidden'], c['hidden'], c['layers'], cutoff=c['r'],
                               interaction_graph=RadiusGraph(c['r'])))
    if c['model'] == 'dimenet++':  # the sizes of its paper for QM9
        dimenet.radius_graph = radius_graph  # PyG's needs pyg-lib
        return PyGModel(DimeNetPlusPlus(
            c['hidden'], 1, c['layers'], int_emb_size=64, basis_emb_size=8,
            out_emb_channels=256, num_spherical=7, num_radial=6, cutoff=c['r']))
    return BUILDERS['lie_transformer'](**lie_kwargs(c))


def lie_kwargs(c: dict) -> dict:  # of torch_lie.pretrained's 'lie_transformer' builder
    if c['paper_layout']:
        resize = dict(hidden_channels=c['hidden'], num_layers=c['layers'],
                      heads=c['heads'])
        return dict(paper_layout='qm9_paper',
                    **{k: v for k, v in resize.items() if v is not None})
    return dict(group=c['group'], num_samples=c['num_lift_samples'], r=c['r'],
                max_num_neighbors=c['max_num_neighbors'], in_channels=15,
                hidden_channels=c['hidden'], out_channels=1, num_layers=c['layers'],
                heads=c['heads'], kernel_dim=c['kernel_dim'],
                attention=c['attention'], pool=c['pool'])


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
    if args.pretrained:
        return test_pretrained(args, ctx)
    config, world = make_config(args), ctx.world_size
    info = qm9_target_info(config['target'])
    if args.batch_size % world:
        raise ValueError(f'--batch-size ({args.batch_size}) must be '
                         f'divisible by the number of processes ({world})')
    log = print if ctx.is_main else (lambda *a, **k: None)
    torch.manual_seed(args.seed)
    net = build_model(config).to(ctx.device)
    on_device = args.lift_on_device
    on_device = ctx.device.type != 'cpu' if on_device is None else on_device
    lift_on_device = config['model'] != 'lie' or on_device  # PyG's: no lift
    with ctx.main_process_first():  # written and processed on first use
        prepare_qm9(args.root, progress=not args.no_progress)
        dataset = QM9(args.root)
    splits = qm9_paper_splits(dataset, info, args.split_seed, args.split_sizes,
                              config['augment'],
                              None if lift_on_device else net.lift)
    for i, n in enumerate((args.n_train, args.n_val)):  # always the same test set
        if n is not None and n > len(splits[i]):
            raise ValueError(f"--n-{('train', 'val')[i]} {n} is more than the "
                             f"{len(splits[i])} molecules of that split")
        splits[i] = splits[i] if n is None else splits[i][:n]
    y = qm9_targets(splits[0], info)
    mean, std = float(y.mean()), (float(y.std()) if len(y) > 1 else 0.0) or 1.0
    log(f"QM9 '{info.name}' ({info.unit}): "
        f"{' / '.join(str(len(s)) for s in splits)} train / val / test")

    # Global batch k is the k-th batch of every process.
    sampler = DistributedSampler(splits[0], world, ctx.rank, seed=args.seed)
    kwargs = dict(batch_size=args.batch_size // world, num_workers=args.num_workers)
    loader = DataLoader(splits[0], sampler=sampler, **kwargs)
    val, test = (DataLoader(s[ctx.rank::world], **kwargs) for s in splits[1:])
    params = sum(p.numel() for p in net.parameters())
    log(f'{params:,} parameters; {world} process(es) of batch '
        f'{args.batch_size // world}')
    torch.manual_seed(args.seed + ctx.rank)  # same weights, own draws
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, betas=config['betas'])
    total = args.epochs * len(loader)
    warmup = min(math.ceil(args.warmup * total), total - 1)  # 1 step: none
    scheduler = warmup_cosine(optimizer, total, warmup)
    ckpt = Checkpointer(args.out, config, resume=args.resume,
                        overwrite=args.overwrite, ctx=ctx)
    model = ctx.wrap(net)  # DistributedDataParallel in a torchrun launch

    def step(batch):
        batch = batch.to(ctx.device)
        target = (batch.y.view(-1) - mean) / std
        loss = (model(batch).view(-1) - target).abs().mean()
        loss.backward()
        return batch.num_graphs, {'loss': float(loss.detach()) * batch.num_graphs}

    result = fit(net, loader, step, optimizer, scheduler, args.epochs, ckpt,
                 evaluate=lambda: {'val_mae': evaluate(net, val, mean, std, ctx)},
                 eval_every=args.eval_every,
                 monitor='val_mae', best_extra=dict(target_mean=mean, target_std=std),
                 progress=not args.no_progress, log=log)
    group = 'SE3' if config['paper_layout'] else config['group']
    paper = qm9_paper_mae(info, group) if config['model'] == 'lie' else None
    metrics = {'config': config, 'parameters': params, **result, 'unit': info.unit,
               'test_mae': evaluate(net, test, mean, std, ctx), 'world_size': world,
               'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               'split': [len(s) for s in splits],
               'paper_row': paper and paper[0], 'paper_mae': paper and paper[1]}
    log(f"test MAE {info.name}: {metrics['test_mae']:.4g} {info.unit}" +
        (f'; paper {paper[0]}: {paper[1]:g} {info.unit}' if paper else ''))
    if ctx.is_main:
        save_json(metrics, f'{args.out}/metrics.json')
    if ctx.is_main and args.save_pretrained:
        record = dict(config=config, target_mean=mean, target_std=std, unit=info.unit,
                      test_mae=metrics['test_mae'], split=metrics['split'])
        save_pretrained(net, args.save_pretrained, 'lie_transformer',
                        lie_kwargs(config), metrics=record)
    return metrics


def load_model(args, requested: dict):
    r"""The model of --checkpoint or --pretrained, its run's configuration
    and the target's normalisation; the model options requested must match."""
    if args.pretrained:
        state = pretrained_info(args.pretrained)['metrics']
        where = f"pretrained model '{args.pretrained}'"
    else:
        state = read_checkpoint(args.checkpoint, 'pass best.pt of a qm9.py run')
        where = f"'{args.checkpoint}'"
    if 'target_mean' not in state:
        raise ValueError(f'{where} is not a model of qm9.py')
    config = state['config']
    diff = config_differences({k: config[k] for k in requested}, requested)
    if diff:
        raise ValueError(f'{where} holds a model with {diff}')
    if args.pretrained:
        model = from_pretrained(args.pretrained)
    else:
        model = build_model(config)
        model.load_state_dict(state['model'])
    return model.to(args.device).eval(), config, state


def test_pretrained(args, ctx) -> dict:
    r"""The test MAE of a saved model on the test split it was tested on."""
    model, config, state = load_model(args, {})  # training options do not apply
    info = qm9_target_info(config['target'])
    with ctx.main_process_first():
        prepare_qm9(args.root, progress=not args.no_progress)
        dataset = QM9(args.root)
    lift = None if ctx.device.type != 'cpu' else model.lift  # as in training
    test = qm9_paper_splits(dataset, info, config['split_seed'],
                            config['split_sizes'], False, lift)[2]
    loader = DataLoader(test[ctx.rank::ctx.world_size], batch_size=args.batch_size)
    torch.manual_seed(args.seed)
    mae = evaluate(model, loader, state['target_mean'], state['target_std'], ctx)
    print(f"{args.pretrained}: test MAE {info.name} {mae:.4g} {info.unit} on "
          f"{len(test)} molecules (recorded: {state['test_mae']:.4g})")
    return {'pretrained': args.pretrained, 'test_mae': mae, 'num_test': len(test)}


@torch.no_grad()
def predict(args) -> None:
    requested = {k: getattr(args, k) for k in MODEL if getattr(args, k) is not None}
    model, config, state = load_model(args, requested)
    info = qm9_target_info(config['target'])
    torch.manual_seed(args.seed)
    for path in args.files:
        atoms = read_molecule(path, index=args.index)
        if atoms.pbc.any():  # the lift has no periodic images
            raise ValueError(f"'{path}' is periodic (pbc={atoms.pbc.tolist()}): "
                             f"QM9 models predict isolated molecules")
        try:
            data = atoms_to_data(atoms, features=qm9_features).to(args.device)
        except ValueError as error:
            raise ValueError(f"'{path}': {error}") from None
        value = sum(float(model(data)) for _ in range(args.samples))  # random lifts
        value = value / args.samples * state['target_std'] + state['target_mean']
        print(f'{path}: {info.name} = {value:.6g} {info.unit} '
              f'({atoms.get_chemical_formula()})')


def main(argv=None):
    parser, args = parse(sys.argv[1:] if argv is None else list(argv))
    args.device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        check_device(args.device)
        if args.group is not None:
            group_resolver(args.group)
        if args.target is not None:
            qm9_target_info(args.target)
    except ValueError as error:
        parser.error(str(error))
    check_counts(parser, args, ('samples', ) if parser is PREDICT else
                 ('epochs', 'batch_size', 'threads', 'eval_every'))
    for name in ('n_train', 'n_val'):
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if parser is PARSER and not args.pretrained:
        check_out(parser, args.out)
    if parser is PARSER and not (args.lr > 0 and 0 <= args.warmup < 1):
        parser.error('--lr must be > 0 and --warmup in [0, 1)')
    given = [k for k in LIE_ONLY if getattr(args, k, None) not in (None, False)]
    if args.model not in (None, 'lie') and given:
        parser.error(f"--{given[0].replace('_', '-')} is an option of --model lie "
                     f"(not {args.model})")
    clash = [k for k in PAPER_SET if getattr(args, k, None) is not None]
    if args.paper_layout and clash:
        parser.error(f"--{clash[0].replace('_', '-')} is set by --paper-layout")
    if parser is PARSER and args.save_pretrained:
        if args.model != 'lie' or args.pretrained:
            parser.error('--save-pretrained saves a LieTransformer trained here')
        if os.path.exists(args.save_pretrained) and not args.overwrite:
            parser.error(f"'{args.save_pretrained}' exists: pass --overwrite to "
                         f"replace it, or another path")
    if parser is PREDICT:
        return predict(args)
    torch.set_num_threads(args.threads)
    with init_distributed(args.device) as ctx:  # joins a torchrun launch
        return train(args, ctx)


if __name__ == '__main__':
    exit_on_error(main)
