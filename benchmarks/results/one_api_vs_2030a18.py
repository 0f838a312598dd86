r"""The record of how ``one_api_vs_2030a18.md`` was made: training steps
through the one API of this tree against the two APIs of the release before
it (commit 2030a18: its sparse ``Lift.lift`` + ``model(x[point_index], ...)``
glue and its dense ``Lift.dense_inputs`` + ``forward_dense`` side path), in
one process, interleaved, the same weights. The old package is exported
from git as ``torch_lie_ref``; the calls to its old API below are the
reference side only (this tree has no such API).

    python benchmarks/results/one_api_vs_2030a18.py [--quick] [--threads 1]
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))
from benchmarks import common  # noqa: E402

REF = '2030a18'


def export_reference(root: str):
    tmp = tempfile.mkdtemp()
    archive = subprocess.run(
        ['git', 'archive', REF, 'torch_lie'], cwd=root, check=True, capture_output=True
    ).stdout
    subprocess.run(['tar', '-x', '-C', tmp], input=archive, check=True)
    os.rename(os.path.join(tmp, 'torch_lie'), os.path.join(tmp, 'torch_lie_ref'))
    for dirpath, _, files in os.walk(os.path.join(tmp, 'torch_lie_ref')):
        for f in files:
            if f.endswith('.py'):
                p = os.path.join(dirpath, f)
                s = open(p).read()
                open(p, 'w').write(re.sub(r'\btorch_lie\b', 'torch_lie_ref', s))
    sys.path.insert(0, tmp)


def copy_weights(old, cur):
    r"""The reference's weights, with this tree's record of the lift."""
    state = old.state_dict()
    state.update({k: v for k, v in cur.state_dict().items()
                  if k.endswith('_extra_state')})
    cur.load_state_dict(state)


def train_step(model, params, loss_fn):
    opt = torch.optim.Adam(params, lr=1e-5)

    def step():
        opt.zero_grad()
        loss_fn().backward()
        opt.step()

    return step


def springs(ref, new, args):
    kw = dict(
        hidden_channels=160 if not args.quick else 32,
        num_layers=5 if not args.quick else 2,
        heads=8,
        kernel_dim=16,
        attention='dot_product',
    )
    B = 100 if not args.quick else 10
    def dynamics(pkg, lift, compile):
        return pkg.nn.models.HamiltonianDynamics(
            pkg.nn.models.SeparableHamiltonian(
                pkg.nn.models.LiePotential(2, lift, **kw)), compile=compile)

    old = dynamics(ref, 'T2', False)
    cur = dynamics(new, new.transforms.Lift('T2'), False)
    copy_weights(old, cur)
    models = {f'{REF} dense': old, 'one API': cur}
    if args.compile:
        models[f'{REF} dense, compiled'] = dynamics(ref, 'T2', True)
        models['one API, compiled'] = dynamics(new, new.transforms.Lift('T2'),
                                               True)
        models[f'{REF} dense, compiled'].load_state_dict(old.state_dict())
        models['one API, compiled'].load_state_dict(cur.state_dict())
    z0 = torch.randn(B, 2, 6, 2)
    sys_params = torch.rand(B, 6, 2) + 0.1
    ts = torch.linspace(0, 0.04, 5)  # 5 states, 4 RK4 steps (the original's)
    target = torch.randn(B, 5, 2, 6, 2)

    def loss(model):
        return lambda: ((model.rollout(z0, ts, sys_params) - target) ** 2).mean()

    return {name: train_step(m, m.parameters(), loss(m))
            for name, m in models.items()}


def clouds(args, dim, sizes, features):
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(n, dim, generator=g), torch.randn(n, features, generator=g))
        for n in sizes
    ]


def point_cloud_models(ref, new, group, num_samples, data, kw, args):
    from torch_geometric.data import Batch, Data

    old_lift = ref.transforms.Lift(group, num_samples)
    lift = new.transforms.Lift(group, num_samples)
    F = data[0][1].size(1)
    old = ref.nn.LieTransformer(F, out_channels=1, group=group, **kw)
    cur = new.nn.LieTransformer(F, out_channels=1, lift=lift, **kw)
    copy_weights(old, cur)
    batch = Batch.from_data_list([Data(pos=p, x=x) for p, x in data])
    y = torch.randn(len(data), 1)
    N = max(p.size(0) for p, _ in data)
    pos_pad = torch.zeros(len(data), N, data[0][0].size(1))
    x_pad = torch.zeros(len(data), N, F)
    mask = torch.zeros(len(data), N, dtype=torch.bool)
    for b, (p, x) in enumerate(data):
        pos_pad[b, : len(p)], x_pad[b, : len(p)], mask[b, : len(p)] = p, x, True

    def old_sparse():
        lifted = old_lift.lift(batch.pos, batch.batch)
        out = old(
            batch.x[lifted.point_index],
            lifted.edge_index,
            lifted.edge_attr,
            lifted.batch,
            num_graphs=len(data),
        )
        return ((out - y) ** 2).mean()

    def old_dense():
        out = old.forward_dense(*old_lift.dense_inputs(x_pad, pos_pad, mask))
        return ((out - y) ** 2).mean()

    def one_api(kernel):
        def fn():
            cur.kernel = kernel
            return ((cur(batch) - y) ** 2).mean()

        return fn

    return {
        '2030a18 sparse': train_step(old, old.parameters(), old_sparse),
        '2030a18 dense (padded)': train_step(old, old.parameters(), old_dense),
        'one API auto': train_step(cur, cur.parameters(), one_api('auto')),
        'one API sparse': train_step(cur, cur.parameters(), one_api('sparse')),
        'one API dense': train_step(cur, cur.parameters(), one_api('dense')),
    }


def constellation_sizes(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    pattern = torch.tensor([3, 4, 5, 5, 3, 4, 5, 5])  # 8 patterns, 34 points
    sizes = []
    for _ in range(batch):
        keep = torch.rand(8, generator=g) < 0.5
        if not keep.any():
            keep[torch.randint(8, (1,), generator=g)] = True
        sizes.append(int(pattern[keep].sum()))
    return sizes


def main():
    p = common.parser(__doc__)
    p.add_argument('--compile', action='store_true',
                   help='also the compiled springs step (minutes to compile)')
    args = p.parse_args()
    common.setup(args)
    export_reference(os.path.join(os.path.dirname(__file__), '..', '..'))
    import torch_lie_ref as ref

    import torch_lie as new

    small = args.quick
    wide = dict(hidden_channels=32 if small else 512,
                num_layers=2 if small else 6, heads=8)
    qm9 = dict(hidden_channels=32 if small else 1504,
               num_layers=2 if small else 6, heads=8)
    sizes = constellation_sizes(6 if small else 90)
    mol_data = [(torch.tensor(a.positions, dtype=torch.float32),
                 torch.randn(len(a), 15))
                for a in common.qm9_sized_molecules(8)]
    configs = {
        'springs T(2), batch 100': lambda: springs(ref, new, args),
        'constellation T(2), batch 90': lambda: point_cloud_models(
            ref, new, 'T2', 1, clouds(args, 2, sizes, 33), wide, args),
        'constellation SE(2)xC2, batch 90': lambda: point_cloud_models(
            ref, new, 'SE2-C2', 1, clouds(args, 2, sizes, 33), wide, args),
        'QM9 paper SE(3) 4 lifts, batch 8': lambda: point_cloud_models(
            ref, new, 'SE3', 4, mol_data, qm9, args),
    }
    device = torch.device('cpu')
    repeats = 2 if small else args.repeats
    results, lines = {}, []
    mm = common.mm_gflops(device)
    for name, make in configs.items():
        times = common.interleaved(make(), repeats, device, warmup=2)
        results[name] = times
        best_old = min(v['median_s'] for k, v in times.items()
                       if k.startswith(REF))
        block = ['', f'### {name}', '',
                 f'| path | median s | min s | fastest {REF} path / this |',
                 '|---|---|---|---|']
        block += [f"| {k} | {v['median_s']:.3f} | {v['min_s']:.3f} | "
                  f"{best_old / v['median_s']:.2f}x |"
                  for k, v in times.items()]
        print('\n'.join(block), flush=True)
        lines += block
    mm_after = common.mm_gflops(device)
    header = [f'# One API against the release before it ({REF}), '
              f'training steps', '',
              f'Interleaved in one process, median of {repeats} after 2 '
              f'warm-ups, threads={torch.get_num_threads()}; torch.mm '
              f'{mm:.0f} / {mm_after:.0f} GFLOP/s (before / after). '
              f'Command: `{common.command()}`.']
    if small:
        return
    out = os.path.join(os.path.dirname(__file__), 'one_api_vs_2030a18')
    with open(out + '.json', 'w') as f:
        json.dump({'ref': REF, 'results': results, 'mm_gflops_before': mm,
                   'mm_gflops_after': mm_after,
                   'machine': common.machine(device),
                   'command': common.command()}, f, indent=1)
    with open(out + '.md', 'w') as f:
        f.write('\n'.join(header + lines) + '\n')


if __name__ == '__main__':
    main()
