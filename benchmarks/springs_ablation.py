r"""A cheap test bench for the spring potential's training.

Trains a small T(2) :class:`~torch_lie.nn.models.LiePotential` on 5-step
roll-outs (by default 400 training systems, batch 100, Adam with a cosine
schedule over ``--steps``) and prints the validation MSE (5-step roll-outs of
200 systems) every 25 steps, so that a change to the model or the recipe can
be judged in minutes before the paper-size study
(``benchmarks/dynamics_data_efficiency.py``) is rerun::

    python benchmarks/springs_ablation.py --final-norm      # the old model
    python benchmarks/springs_ablation.py --lr 3e-3
    python benchmarks/springs_ablation.py --location-init default
    python benchmarks/springs_ablation.py --output-layers 3  # the reference's
    python benchmarks/springs_ablation.py --steps 1200 --batch-size 25
    python benchmarks/springs_ablation.py --ema 0.99  # also validates an EMA

Each run takes about 3 minutes per 300 steps on one core (the default
model: width 64, 3 layers, 4 heads, kernel dim 16). ``--out FILE`` writes
the curve as JSON.
"""
import argparse
import json
import math
import time

import torch
from torch.optim import swa_utils
from torch.utils.data import DataLoader

from torch_lie.datasets import SpringDynamics
from torch_lie.nn.models import HamiltonianDynamics, LiePotential, SeparableHamiltonian
from torch_lie.transforms import Lift


def build_potential(args) -> LiePotential:
    potential = LiePotential(2, lift=Lift('T2'), hidden_channels=args.hidden,
                             num_layers=args.layers, heads=args.heads,
                             kernel_dim=args.kernel_dim,
                             attention=args.attention,
                             final_norm=args.final_norm)
    transformer = potential.transformer
    if args.location_init == 'default':
        # PyTorch's Linear default bound 1/sqrt(fan_in) instead of He's.
        for conv in (block.attn for block in transformer.blocks):
            for weight, fan_in in ((conv.kernel_in.weight, conv.edge_dim),
                                   (conv.kernel_hidden, conv.kernel_dim),
                                   (conv.kernel_out, conv.kernel_dim)):
                bound = 1 / math.sqrt(fan_in)
                torch.nn.init.uniform_(weight, -bound, bound)
    if args.output_layers == 3:
        # The reference's output MLP: Swish before each of three layers.
        width = args.hidden
        transformer.head = torch.nn.Sequential(
            torch.nn.SiLU(), torch.nn.Linear(width, width), torch.nn.SiLU(),
            torch.nn.Linear(width, width), torch.nn.SiLU(),
            torch.nn.Linear(width, 1))
    return potential


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--batch-size', type=int, default=100)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--n-train', type=int, default=400)
    parser.add_argument('--train-systems', type=int, default=3000,
                        help="size of the training split (the study's)")
    parser.add_argument('--n-val', type=int, default=200)
    parser.add_argument('--hidden', type=int, default=64)
    parser.add_argument('--layers', type=int, default=3)
    parser.add_argument('--heads', type=int, default=4)
    parser.add_argument('--kernel-dim', type=int, default=16)
    parser.add_argument('--attention', default='dot_product',
                        choices=['dot_product', 'softmax'])
    parser.add_argument('--final-norm', action='store_true',
                        help='keep the LayerNorm before pooling')
    parser.add_argument('--location-init', default='he',
                        choices=['he', 'default'])
    parser.add_argument('--output-layers', type=int, default=2,
                        choices=[2, 3])
    parser.add_argument('--ema', type=float, default=None, metavar='DECAY',
                        help='also validate an exponential moving average '
                        'of the weights (the same training run)')
    parser.add_argument('--double', action='store_true')
    parser.add_argument('--no-compile', dest='compile', action='store_false')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--root', default='data/springs')
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dtype = torch.float64 if args.double else torch.float32
    common = dict(root=args.root, seed=0, dtype=dtype, log=False,
                  chunks_per_system=1)
    train = SpringDynamics(split='train', n_train=args.n_train,
                           num_systems=args.train_systems, **common)
    val_set = SpringDynamics(split='val', num_systems=args.n_val, **common)
    val = next(iter(DataLoader(val_set, batch_size=args.n_val)))

    model = HamiltonianDynamics(SeparableHamiltonian(build_potential(args)),
                                compile=args.compile).to(dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                           args.steps)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True,
                        drop_last=True,
                        generator=torch.Generator().manual_seed(args.seed))
    ema = None
    if args.ema is not None:
        ema = swa_utils.AveragedModel(
            model, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(args.ema))

    def validate(model) -> float:
        model.eval()
        with torch.no_grad(), model.eager():  # one call: not worth compiling
            z0, ts, sys_params, z = val
            mse = (model.rollout(z0, ts[0], sys_params) - z).pow(2).mean()
        model.train()
        return float(mse)

    curve, step, start = [], 0, time.perf_counter()
    while step < args.steps:
        for z0, ts, sys_params, z in loader:
            loss = (model.rollout(z0, ts[0], sys_params) - z).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            if step % 25 == 0 or step == args.steps:
                point = {'step': step, 'train_mse': loss.item(),
                         'val_mse': validate(model)}
                if ema is not None:
                    point['ema_val_mse'] = validate(ema.module)
                point['time_s'] = time.perf_counter() - start
                curve.append(point)
                print(f"step {step:5d}  train {point['train_mse']:.3e}  " +
                      '  '.join(f"{k[:-4].replace('_', ' ')} {v:.3e}"
                                for k, v in point.items()
                                if k.endswith('val_mse')) +
                      f"  {point['time_s']:.0f} s", flush=True)
            if step == args.steps:
                break
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({'args': vars(args), 'curve': curve}, f, indent=1)
    return curve


if __name__ == '__main__':
    main()
