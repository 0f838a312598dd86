r"""QM9 molecular property regression with a LieTransformer, as in the
`"LieTransformer: Equivariant Self-Attention for Lie Groups"
<https://arxiv.org/abs/2012.10885>`_ paper (section 5.2).

Data: PyG's :class:`torch_geometric.datasets.QM9` (130,831 molecules,
downloaded into :obj:`--root` on first use), one of the paper's 12 targets in
the paper's units (energies in meV, atomisation energies for U0, U, H, G),
the paper's 15 atom features and its seeded 100,000 / 17,748 / 13,083 split
(:mod:`torch_lie.datasets.qm9`). The model
(:class:`~torch_lie.nn.LieTransformer`) owns its
:class:`~torch_lie.transforms.Lift`; each molecule is lifted to group
elements by it when it is read (the data sets' transform is the model's
lift), or, with :obj:`--lift-on-device`, the model lifts whole batches
itself (fresh Monte Carlo samples every time for SE(3)); T(3) models are
trained with random rotations (SO(3) augmentation, :obj:`--no-augment` to
switch off).

Training: L1 loss on the standardised target, Adam with a cosine schedule
after a linear warm-up over the first 1% of the steps, validation MAE after
every epoch, the checkpoint of the best validation MAE evaluated on the test
set at the end and printed beside the paper's number. Checkpoints are
written atomically to :obj:`--out` after every epoch (:obj:`checkpoint.pt`,
the whole training state; :obj:`best.pt`, the best model);
:obj:`--resume` continues an interrupted run exactly where it stopped::

    # The paper's SE(3) model on HOMO, on a GPU (molecules are lifted there,
    # batch by batch; the data loader only reads and rotates molecules)
    python examples/qm9.py --target homo --group SE3 --num-lift-samples 4 \
        --device cuda --num-workers 4 --out runs/qm9-homo-se3
    # T(3) with SO(3) augmentation ("LieTr-T3+aug"), a radius graph of 5 Å
    python examples/qm9.py --target U0 --group T3 --r 5.0 --out runs/qm9-u0
    # A quick CPU try
    python examples/qm9.py --target homo --hidden 64 --layers 2 --epochs 2
    # Continue after an interruption
    python examples/qm9.py --target homo --group SE3 --resume

    # Predict the target of any molecule file ASE can read
    python examples/qm9.py predict --checkpoint runs/qm9/best.pt mol.xyz

Defaults are the paper's configuration (width 1504, 6 layers, 8 heads,
4 lifted samples, batch 100, learning rate 1e-3, 500 epochs).

Data-parallel training: launched by :obj:`torchrun`, one process per GPU
(:obj:`cuda:LOCAL_RANK`, backend :obj:`nccl`) or per share of the CPU
(:obj:`--device cpu`, backend :obj:`gloo`), the model is wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`::

    # 4 GPUs of one machine; --batch-size is the global batch (25 per GPU)
    torchrun --nproc_per_node 4 examples/qm9.py --target homo --group SE3 \
        --batch-size 100 --out runs/qm9-homo-se3
    # 2 CPU processes
    torchrun --nproc_per_node 2 examples/qm9.py --target homo --group SE3 \
        --device cpu --hidden 64 --layers 2 --epochs 2

:obj:`--batch-size` must be divisible by the number of processes. The
training molecules are visited in an order that depends only on
:obj:`--seed` and the epoch (:class:`~torch.utils.data.DistributedSampler`),
so every number of processes sees the same global batches (up to the
padding of the last one when the training set does not divide evenly
between the processes, which repeats a few molecules). Validation and test
sets are split between the processes, their errors summed over all of them,
so that every process reports the same MAE. Rank 0 processes the data set
(the others wait), prints, and writes the checkpoints, which hold the random
state of every process; :obj:`--resume` loads them in all processes (on
several machines, :obj:`--root` and :obj:`--out` must be on a shared file
system). A run can be resumed with another number of processes: the data
order stays the same, the random draws (augmentation, lifts) do not.

For tests: when the environment variable :obj:`TORCH_LIE_QM9_DUMP_DIR` is
set, each process writes its weights at the end of the last epoch and its
own training losses of every step to :obj:`rank{RANK}.pt` in that folder.
"""
import argparse
import math
import os
import sys
import time
from typing import Dict, Optional

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
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
from torch_lie.training import DistributedContext, init_distributed
from torch_lie.transforms import Lift
from torch_lie.transforms.random_rotation import RandomRotation
from torch_lie.utils import atomic_save, check_device

#: Test MAE of the paper (Table 2), in the units of
#: :data:`torch_lie.datasets.qm9.QM9_TARGETS`.
PAPER_MAE: Dict[str, Dict[str, float]] = {
    'LieTr-T3+aug': {
        'alpha': 0.082, 'gap': 51, 'homo': 33, 'lumo': 27, 'mu': 0.041,
        'Cv': 0.035, 'G': 19, 'H': 17, 'r2': 0.448, 'U': 16, 'U0': 17,
        'zpve': 2.10,
    },
    'LieTr-SE3': {
        'alpha': 0.104, 'gap': 52, 'homo': 33, 'lumo': 29, 'mu': 0.061,
        'Cv': 0.041, 'G': 23, 'H': 27, 'r2': 2.29, 'U': 26, 'U0': 26,
        'zpve': 3.55,
    },
}

#: Configuration entries that define the model (checked when loading).
MODEL_KEYS = ('target', 'group', 'num_lift_samples', 'r',
              'max_num_neighbors', 'hidden', 'layers', 'heads', 'kernel_dim',
              'mlp_ratio', 'pool', 'attention')
#: Further entries that define a training run (checked on --resume).
TRAIN_KEYS = ('epochs', 'batch_size', 'lr', 'warmup', 'seed', 'split_sizes',
              'augment')
FORMAT = 'torch_lie/examples/qm9/1'
#: Testing aid: a folder for each process's final weights and step losses.
DUMP_ENV = 'TORCH_LIE_QM9_DUMP_DIR'


# ----------------------------------------------------------------------
# Configuration, model and checkpoints.
def default_lift_samples(group: str) -> int:
    return 1 if group_resolver(group).deterministic else 4


def make_config(args) -> dict:
    r"""The run's configuration (plain Python values) from parsed
    arguments."""
    group = group_resolver(args.group)  # validates the name
    if args.epochs < 1 or args.batch_size < 1:
        raise ValueError(f"'--epochs' and '--batch-size' must be at least 1 "
                         f"(got {args.epochs} and {args.batch_size})")
    num_samples = args.num_lift_samples
    if num_samples is None:
        num_samples = default_lift_samples(args.group)
    augment = args.augment
    if augment is None:  # rotation augmentation for groups without rotations
        augment = isinstance(group, T)
    return {
        'target': qm9_target_info(args.target).name,
        'group': args.group, 'num_lift_samples': num_samples, 'r': args.r,
        'max_num_neighbors': args.max_num_neighbors, 'hidden': args.hidden,
        'layers': args.layers, 'heads': args.heads,
        'kernel_dim': args.kernel_dim, 'mlp_ratio': args.mlp_ratio,
        'pool': args.pool, 'attention': args.attention,
        'epochs': args.epochs, 'batch_size': args.batch_size, 'lr': args.lr,
        'warmup': args.warmup, 'seed': args.seed,
        'split_sizes': (None if args.split_sizes is None else
                        list(args.split_sizes)),
        'augment': bool(augment),
    }


def build_lift(config: dict) -> Lift:
    return Lift(config['group'], num_samples=config['num_lift_samples'],
                r=config['r'], max_num_neighbors=config['max_num_neighbors'])


def build_model(config: dict) -> LieTransformer:
    return LieTransformer(15, config['hidden'], 1, lift=build_lift(config),
                          num_layers=config['layers'], heads=config['heads'],
                          kernel_dim=config['kernel_dim'],
                          attention=config['attention'], pool=config['pool'],
                          mlp_ratio=config['mlp_ratio'])


def _same(key: str, a, b) -> bool:
    if key == 'group':
        return group_resolver(a) == group_resolver(b)
    if key == 'target':
        return qm9_target_info(a).name == qm9_target_info(b).name
    return a == b


def check_config(saved: dict, requested: dict, path: str, keys) -> None:
    r"""Raises a :class:`ValueError` naming every entry of :obj:`keys` in
    which a checkpoint's configuration differs from the requested one."""
    diffs = [f"{key}: checkpoint {saved.get(key)!r}, requested "
             f"{requested[key]!r}" for key in keys
             if key in requested and not _same(key, saved.get(key),
                                               requested[key])]
    if diffs:
        raise ValueError(f"Checkpoint '{path}' does not match the requested "
                         f"configuration ({'; '.join(diffs)})")


def load_checkpoint(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such checkpoint: '{path}'")
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict) or state.get('format') != FORMAT:
        raise ValueError(f"'{path}' is not a checkpoint of examples/qm9.py")
    return state


def load_model_state(model, state: dict, path: str) -> None:
    try:
        model.load_state_dict(state['model'])
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"The weights in '{path}' do not fit the model of "
                         f"its configuration: {e}") from e


def paper_row(config: dict) -> Optional[str]:
    group = group_resolver(config['group'])
    if isinstance(group, T) and group.space_dim == 3:
        return 'LieTr-T3+aug'
    if type(group).__name__ == 'SE3':
        return 'LieTr-SE3'
    return None


# ----------------------------------------------------------------------
# Training.
def warmup_cosine(step: int, warmup: int, total: int) -> float:
    r"""Learning-rate factor: linear warm-up over :obj:`warmup` steps, then
    a cosine decay to zero at :obj:`total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def evaluate(model, loader, mean: float, std: float, device,
             ctx: Optional[DistributedContext] = None) -> float:
    r"""MAE in the target's unit (the model predicts standardised values),
    over the molecules of :obj:`loader` in all processes of :obj:`ctx`
    (each process holding its share of them). :obj:`model` must not be
    wrapped in :class:`DistributedDataParallel`, as the shares may differ
    in their number of batches."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        pred = model(batch).view(-1).double() * std + mean
        total += float((pred - batch.y.view(-1).double()).abs().sum())
        count += batch.num_graphs
    if ctx is not None:
        total, count = ctx.all_reduce_sum(total, count)
    return total / max(count, 1)


def load_datasets(root: str, config: dict, lift: Optional[Lift] = None):
    r"""The three splits of PyG's QM9 with their transforms, ending with
    :obj:`lift` (the model's) if given; without it, the model lifts whole
    batches."""
    from torch_geometric.datasets import QM9

    dataset = QM9(root)
    idx = qm9_split(len(dataset), config['seed'], config['split_sizes'])
    lift = [] if lift is None else [lift]
    target = QM9Target(config['target'])
    train_steps = [target, QM9Features()]
    if config['augment']:
        train_steps.append(RandomRotation())
    train_set, val_set, test_set = (dataset.index_select(i) for i in idx)
    train_set.transform = Compose(train_steps + lift)
    val_set.transform = test_set.transform = Compose(
        [target, QM9Features()] + lift)
    return train_set, val_set, test_set


def _quiet(*args, **kwargs) -> None:
    pass


def rng_state(device) -> tuple:
    r"""This process's random state: CPU and, on a GPU, CUDA."""
    return (torch.get_rng_state(), torch.cuda.get_rng_state(device)
            if device.type == 'cuda' else None)


def train(args, ctx: Optional[DistributedContext] = None) -> dict:
    r"""Trains (or resumes) a run; :obj:`ctx` is this process's place in a
    data-parallel run (default: a single process on :obj:`--device`)."""
    if ctx is None:
        ctx = DistributedContext(device=torch.device(args.device))
    config = make_config(args)
    info = qm9_target_info(config['target'])
    device, world = ctx.device, ctx.world_size
    if config['batch_size'] % world:
        raise ValueError(f"'--batch-size' ({config['batch_size']}) must be "
                         f"divisible by the number of processes ({world})")
    log = print if ctx.is_main else _quiet
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, 'checkpoint.pt')
    best_path = os.path.join(args.out, 'best.pt')

    # Every process decides on its own (before rank 0 can write anything).
    state = None
    if os.path.exists(ckpt_path):
        if not args.resume:
            raise ValueError(f"'{ckpt_path}' exists: pass --resume to "
                             f"continue that run, or choose another --out")
        state = load_checkpoint(ckpt_path)
        check_config(state['config'], config, ckpt_path,
                     MODEL_KEYS + TRAIN_KEYS)
    elif args.resume:
        log(f"No checkpoint in '{args.out}': starting a new run")

    lift_on_device = args.lift_on_device
    if lift_on_device is None:
        lift_on_device = device.type != 'cpu'

    torch.manual_seed(config['seed'])
    net = build_model(config).to(device)
    with ctx.main_process_first():  # PyG processes QM9 on first use
        # Molecules are lifted by the model's lift: in the data loader (the
        # data sets' transform), or by the model, batch by batch.
        train_set, val_set, test_set = load_datasets(
            args.root, config, None if lift_on_device else net.lift)
    y = qm9_targets(train_set, info)
    mean = float(y.mean())
    std = float(y.std()) if len(y) > 1 else 1.0
    std = std if std > 0 else 1.0  # a constant target
    log(f"QM9 '{info.name}' ({info.description}, {info.unit}): "
        f"{len(train_set)} train / {len(val_set)} val / {len(test_set)} "
        f"test molecules; train mean {mean:.4g}, std {std:.4g}")

    # The order of the training molecules depends on the seed and the epoch
    # only; global batch k is made of the k-th batch of every process.
    sampler = DistributedSampler(train_set, num_replicas=world,
                                 rank=ctx.rank, shuffle=True,
                                 seed=config['seed'], drop_last=False)
    loader_kwargs = dict(batch_size=config['batch_size'] // world,
                         num_workers=args.num_workers)
    train_loader = DataLoader(train_set, sampler=sampler, **loader_kwargs)
    if world > 1:  # each process evaluates its share
        val_set = val_set[ctx.rank::world]
        test_set = test_set[ctx.rank::world]
    val_loader = DataLoader(val_set, **loader_kwargs)
    test_loader = DataLoader(test_set, **loader_kwargs)

    num_params = sum(p.numel() for p in net.parameters())
    log(f"{net}: {num_params:,} parameters, lifted "
        f"{'by the model' if lift_on_device else 'in the data loader'}, "
        f"augmentation {'on' if config['augment'] else 'off'}"
        + (f", {world} processes of batch {config['batch_size'] // world}"
           if ctx.is_distributed else ''))
    if ctx.rank > 0:  # same weights, but random draws of its own
        torch.manual_seed(config['seed'] + ctx.rank)
    optimizer = torch.optim.Adam(net.parameters(), lr=config['lr'])
    # The same number of steps for any number of processes.
    total_steps = config['epochs'] * len(train_loader)
    warmup = max(1, round(config['warmup'] * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup, total_steps))

    start_epoch, best_val, best_epoch, history = 0, math.inf, 0, []
    if state is not None:  # every process loads the checkpoint
        load_model_state(net, state, ckpt_path)
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        start_epoch, history = state['epoch'], list(state['history'])
        best_val, best_epoch = state['best_val_mae'], state['best_epoch']
        mean, std = state['target_mean'], state['target_std']
        saved = state.get('rng_states') or [(state['rng_state'],
                                             state.get('cuda_rng_state'))]
        if len(saved) != world:
            log(f"The checkpoint was written by {len(saved)} process(es), "
                f"resuming with {world}: random draws differ from those of "
                f"an uninterrupted run")
        if ctx.rank < len(saved):
            cpu_state, cuda_state = saved[ctx.rank]
            torch.set_rng_state(cpu_state)
            if device.type == 'cuda' and cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, device)
        else:  # a stream of its own
            torch.manual_seed(config['seed'] + ctx.rank + 1000 * start_epoch)
        log(f"Resuming '{ckpt_path}' after epoch {start_epoch}")

    model = net
    if ctx.is_distributed:  # broadcasts rank 0's weights
        model = DistributedDataParallel(
            net, device_ids=[device] if device.type == 'cuda' else None)

    def snapshot(epoch: int, rng_states=None) -> dict:
        out = {'format': FORMAT, 'config': config, 'epoch': epoch,
               'model': net.state_dict(), 'target_mean': mean,
               'target_std': std, 'best_val_mae': best_val,
               'best_epoch': best_epoch, 'history': history}
        if rng_states is not None:  # the whole training state
            out.update(optimizer=optimizer.state_dict(),
                       scheduler=scheduler.state_dict(),
                       rng_state=rng_states[0][0],
                       cuda_rng_state=rng_states[0][1],
                       rng_states=rng_states, world_size=world)
        return out

    step_losses = []  # this process's, for DUMP_ENV
    for epoch in range(start_epoch, config['epochs']):
        model.train()
        sampler.set_epoch(epoch)
        start, total, count = time.perf_counter(), 0.0, 0
        progress = tqdm(train_loader, desc=f"epoch {epoch + 1}/"
                        f"{config['epochs']}", leave=False,
                        disable=not (args.progress and ctx.is_main))
        for batch in progress:
            batch = batch.to(device)
            target = (batch.y.view(-1) - mean) / std
            # Equal batch sizes in all processes (the sampler pads): the
            # mean of the processes' gradients is that of the global batch.
            loss = (model(batch).view(-1) - target).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            step_losses.append(float(loss.detach()))
            total += step_losses[-1] * batch.num_graphs
            count += batch.num_graphs
            progress.set_postfix(loss=f'{total / count:.4f}')
        seconds = time.perf_counter() - start
        total, count = ctx.all_reduce_sum(total, count)
        val_mae = evaluate(net, val_loader, mean, std, device, ctx)
        history.append({'epoch': epoch + 1, 'train_loss': total / count,
                        'val_mae': val_mae, 'seconds': seconds})
        rng_states = ctx.all_gather_object(rng_state(device))
        if val_mae < best_val:  # the same in every process
            best_val, best_epoch = val_mae, epoch + 1
            if ctx.is_main:
                atomic_save(snapshot(epoch + 1), best_path)
        if ctx.is_main:
            atomic_save(snapshot(epoch + 1, rng_states), ckpt_path)
            tqdm.write(f"epoch {epoch + 1:>4}: train L1 (std. units) "
                       f"{total / count:.4f}, val MAE {val_mae:.4g} "
                       f"{info.unit} ({seconds:.1f} s, "
                       f"{count / seconds:.1f} graphs/s)")

    if os.environ.get(DUMP_ENV):
        dump_dir = os.environ[DUMP_ENV]
        os.makedirs(dump_dir, exist_ok=True)
        torch.save({'rank': ctx.rank, 'world_size': world,
                    'model': net.state_dict(), 'step_losses': step_losses,
                    'history': history},
                   os.path.join(dump_dir, f'rank{ctx.rank}.pt'))

    ctx.barrier()  # best.pt is written
    best = load_checkpoint(best_path)
    load_model_state(net, best, best_path)
    test_mae = evaluate(net, test_loader, mean, std, device, ctx)
    row = paper_row(config)
    paper = PAPER_MAE[row][info.name] if row is not None else None
    line = (f"test MAE {info.name}: {test_mae:.4g} {info.unit} (best "
            f"validation epoch {best_epoch})")
    if paper is not None:
        line += f"; paper {row}: {paper:g} {info.unit}"
    log(line)
    return {'config': config, 'parameters': num_params, 'history': history,
            'best_epoch': best_epoch, 'best_val_mae': best_val,
            'test_mae': test_mae, 'paper_row': row, 'paper_mae': paper,
            'unit': info.unit, 'checkpoint': ckpt_path, 'best': best_path,
            'world_size': world}


# ----------------------------------------------------------------------
# Prediction.
def predict(args) -> list:
    state = load_checkpoint(args.checkpoint)
    config = dict(state['config'])
    requested = {key: getattr(args, key) for key in MODEL_KEYS
                 if getattr(args, key, None) is not None}
    check_config(config, requested, args.checkpoint, MODEL_KEYS)
    info = qm9_target_info(config['target'])
    device = torch.device(args.device)
    model = build_model(config)
    load_model_state(model, state, args.checkpoint)
    model = model.to(device).eval()
    mean, std = state['target_mean'], state['target_std']

    results = []
    for path in args.files:
        atoms = read_molecule(path, index=args.index)
        try:
            data = atoms_to_data(atoms, features=qm9_features)
        except ValueError as e:
            raise ValueError(f"'{path}': {e}") from e
        preds = []
        with torch.no_grad():
            data = data.to(device)
            for _ in range(args.samples):  # Monte Carlo lifts
                preds.append(float(model(data)) * std + mean)
        value = sum(preds) / len(preds)
        print(f"{path}: {info.name} = {value:.6g} {info.unit} "
              f"({atoms.get_chemical_formula()})")
        results.append({'file': str(path), 'target': info.name,
                        'value': value, 'unit': info.unit})
    return results


# ----------------------------------------------------------------------
# Command line.
def add_model_args(parser, defaults: bool):
    d = (lambda value: value) if defaults else (lambda value: None)
    parser.add_argument('--target', default=d('homo'),
                        help="one of mu, alpha, homo, lumo, gap, r2, zpve, "
                        "U0, U, H, G, Cv (default: homo)")
    parser.add_argument('--group', default=d('SE3'),
                        help="group of the lift, e.g. SE3, T3, SO3, "
                        "SE3-matrix (default: SE3)")
    parser.add_argument('--num-lift-samples', type=int, default=None,
                        help='lifted elements per atom (default: 4 for '
                        'random lifts, 1 for T3)')
    parser.add_argument('--r', type=float, default=None,
                        help='neighbourhood radius in Å (default: full '
                        'attention)')
    parser.add_argument('--max-num-neighbors', type=int, default=None,
                        help='keep only the nearest neighbours of each atom '
                        '(default: all)')
    parser.add_argument('--hidden', type=int, default=d(1504))
    parser.add_argument('--layers', type=int, default=d(6))
    parser.add_argument('--heads', type=int, default=d(8))
    parser.add_argument('--kernel-dim', type=int, default=d(16))
    parser.add_argument('--mlp-ratio', type=float, default=d(1.0))
    parser.add_argument('--pool', default=d('mean'),
                        choices=['mean', 'sum', 'max'])
    parser.add_argument('--attention', default=d('softmax'),
                        choices=['softmax', 'dot_product'])


def parse_train_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Trains a LieTransformer on a QM9 target, as in the '
        'LieTransformer paper (arXiv:2012.10885, section 5.2).',
        epilog="Use 'qm9.py predict -h' for predictions from a checkpoint.")
    add_model_args(parser, defaults=True)
    parser.add_argument('--root', default='data/QM9',
                        help="PyG's QM9 folder (default: data/QM9)")
    parser.add_argument('--epochs', type=int, default=500)
    parser.add_argument('--batch-size', type=int, default=100)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--warmup', type=float, default=0.01,
                        help='warm-up fraction of the steps (default: 0.01)')
    parser.add_argument('--augment', action=argparse.BooleanOptionalAction,
                        default=None, help='random SO(3) rotations of the '
                        'training molecules (default: on for T3 only)')
    parser.add_argument('--split-sizes', type=int, nargs=3, default=None,
                        metavar=('TRAIN', 'VAL', 'TEST'),
                        help='explicit split sizes (default: the paper\'s '
                        '100000 17748 13083, scaled to the data)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the split, the model and the draws')
    parser.add_argument('--out', default='runs/qm9')
    parser.add_argument('--resume', action='store_true',
                        help="continue the run in --out from checkpoint.pt")
    parser.add_argument('--device',
                        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--num-workers', type=int, default=0,
                        help='data loader processes')
    parser.add_argument('--lift-on-device',
                        action=argparse.BooleanOptionalAction, default=None,
                        help='let the model lift whole batches on --device '
                        'instead of lifting each molecule in the data loader '
                        '(default: on for GPUs, where lifting in the loader '
                        'would be the bottleneck)')
    parser.add_argument('--progress', action=argparse.BooleanOptionalAction,
                        default=True, help='tqdm progress bars')
    args = parser.parse_args(argv)
    if args.split_sizes is not None:
        args.split_sizes = tuple(args.split_sizes)
    return args


def parse_predict_args(argv):
    parser = argparse.ArgumentParser(
        prog='qm9.py predict',
        description='Predicts the target of molecules from a checkpoint of '
        'qm9.py. Model options, when given, must match the checkpoint.')
    parser.add_argument('--checkpoint', required=True,
                        help='best.pt or checkpoint.pt of a training run')
    parser.add_argument('files', nargs='+',
                        help='molecule files in any format ASE reads')
    parser.add_argument('--index', type=int, default=-1,
                        help='structure of multi-structure files (default: '
                        'the last)')
    parser.add_argument('--samples', type=int, default=1,
                        help='average over this many random lifts')
    parser.add_argument('--device', default='cpu')
    add_model_args(parser, defaults=False)
    return parser.parse_args(argv)


def main(argv=None):
    r"""Runs training (returns its metrics) or, with :obj:`predict` as the
    first argument, prediction (returns one result per file)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == 'predict':
        args = parse_predict_args(argv[1:])
        check_device(args.device)
        return predict(args)
    args = parse_train_args(argv)
    check_device(args.device)
    # Joins the process group when launched by torchrun.
    with init_distributed(args.device) as ctx:
        return train(args, ctx)


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
