r"""Forward + backward time of torch_lie against the PyPI package
``lie-transformer-pytorch`` (an SE(3) LieTransformer in a dense, padded
formulation), on the same molecules with a comparable model.

Molecules: a seeded batch of ``--batch-size`` QM9-sized molecules from ASE's
g2 collection (real geometries, no download;
:func:`benchmarks.common.qm9_sized_molecules`). Every point is lifted to
``--lift-samples`` random SE(3) elements (the peer's ``liftsamples``, our
``Lift('SE3', num_samples=k)``), with full attention over all lifted
elements of a molecule. Both models: width
``--hidden``, ``--depth`` blocks, ``--heads`` heads of ``hidden / heads``
channels, pre-LayerNorm, pointwise MLPs 4x as wide, softmax attention with
content + location logits, mean pooling over the lifted elements. The peer
gets ``nbhd`` equal to the padded number of lifted elements and ``fill=1``
(every element in every neighbourhood); the rest are its defaults.

Three implementations, timed interleaved in one process (median and range
of several repeats after warm-up), each from positions and element types to
a scalar loss (sum of the outputs) and ``.backward()``, lifting included:

- ``peer``: ``lie_transformer_pytorch.LieTransformer`` on a padded batch
  with a mask (it lifts inside its forward);
- ``sparse`` and ``dense``: the two kernels of one
  :class:`~torch_lie.nn.LieTransformer` with
  ``lift=Lift('SE3', num_samples=k)``, called on the collated molecules (a
  :class:`~torch_geometric.data.Batch`, lifted inside) with
  ``model.kernel = 'sparse'`` (message passing on the lifted edges) or
  ``'dense'`` (batched matrix products over the molecules padded to the
  largest). The default ``kernel='auto'`` picks one of them (reported).

It also reports parameter counts, peak memory per implementation (see
:func:`benchmarks.common.peak_memory_gb`), the matrix FLOPs of one call and
the ratios peer / ours. The target: torch_lie at least 5x faster than the
peer. Needs the peer (``pip install -e '.[bench]'``)::

    python -m benchmarks.peer [--quick] [--batch-size 16] [--depth 2]
"""
import argparse
import importlib.metadata
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch, Data

from benchmarks import common
from torch_lie.nn import LieTransformer
from torch_lie.transforms import Lift

try:
    import lie_transformer_pytorch
except ImportError:  # reported in main()
    lie_transformer_pytorch = None

#: QM9's elements, the one-hot features / tokens.
ELEMENTS = list(common.QM9_ELEMENTS)
TARGET = 5.0
NAMES = {'peer': 'lie-transformer-pytorch (peer)',
         'sparse': 'torch_lie, sparse kernel',
         'dense': 'torch_lie, dense kernel'}


def molecules(batch_size: int, seed: int) -> Tuple[List[str], Tensor, Tensor,
                                                   Tensor]:
    r""":func:`benchmarks.common.qm9_sized_molecules` as a padded batch:
    their g2 names, positions :obj:`[B, N, 3]` (zeros where padded),
    element indices :obj:`[B, N]` and the mask :obj:`[B, N]`."""
    chosen = common.qm9_sized_molecules(batch_size, seed)
    N = max(len(atoms) for atoms in chosen)
    pos = torch.zeros(batch_size, N, 3)
    z = torch.zeros(batch_size, N, dtype=torch.long)
    mask = torch.zeros(batch_size, N, dtype=torch.bool)
    for b, atoms in enumerate(chosen):
        n = len(atoms)
        pos[b, :n] = torch.tensor(atoms.positions, dtype=torch.float32)
        z[b, :n] = torch.tensor([ELEMENTS.index(s)
                                 for s in atoms.get_chemical_symbols()])
        mask[b, :n] = True
    return [atoms.info['name'] for atoms in chosen], pos, z, mask


def build_peer(args: argparse.Namespace, num_lifted: int) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    return lie_transformer_pytorch.LieTransformer(
        dim=args.hidden, num_tokens=len(ELEMENTS), dim_out=1,
        depth=args.depth, heads=args.heads,
        dim_head=args.hidden // args.heads, liftsamples=args.lift_samples,
        nbhd=num_lifted, fill=1.0)


def build_ours(args: argparse.Namespace) -> LieTransformer:
    torch.manual_seed(args.seed)
    return LieTransformer(len(ELEMENTS), args.hidden, 1,
                          lift=Lift('SE3', num_samples=args.lift_samples),
                          num_layers=args.depth, heads=args.heads,
                          mlp_ratio=4.0)


def steps(args: argparse.Namespace, device: torch.device
          ) -> Tuple[Dict[str, Callable[[], None]], Dict[str, int], dict]:
    r"""One forward + backward per implementation, their parameter counts
    and a description of the batch."""
    names, pos, z, mask = molecules(args.batch_size, args.seed)
    pos, z, mask = pos.to(device), z.to(device), mask.to(device)
    k = args.lift_samples
    lifted_mask = mask.repeat_interleave(k, dim=1)  # element i*k+b: point i
    peer = build_peer(args, lifted_mask.size(1)).to(device)
    ours = build_ours(args).to(device)
    # Our inputs: the molecules without padding, collated.
    x = F.one_hot(z, len(ELEMENTS)).float()
    batch = Batch.from_data_list([Data(pos=p[m], x=f[m])
                                  for p, f, m in zip(pos, x, mask)])

    def run_peer() -> None:
        peer.zero_grad(set_to_none=True)
        out = peer(z, pos, mask=mask)[..., 0]  # [B, M] per lifted element
        # Its own pooling (return_pooled=True) fails in version 0.0.17.
        out = (out * lifted_mask).sum(1) / lifted_mask.sum(1)
        out.sum().backward()

    def ours_with(kernel: str) -> Callable[[], None]:
        def run_ours() -> None:
            ours.kernel = kernel
            ours.zero_grad(set_to_none=True)
            out = ours(batch)
            out.sum().backward()
        return run_ours

    params = {'peer': sum(p.numel() for p in peer.parameters()),
              'sparse': sum(p.numel() for p in ours.parameters())}
    params['dense'] = params['sparse']
    data = {'molecules': names, 'atoms': mask.sum(1).tolist(),
            'padded_atoms': mask.size(1),
            'lifted_elements': int(lifted_mask.sum()),
            'padded_lifted_elements': lifted_mask.numel(),
            # The kernel kernel='auto' runs on these molecules.
            'auto_kernel': ('sparse' if ours._dense_layout(ours.lift(batch))
                            is None else 'dense')}
    return ({'peer': run_peer, 'sparse': ours_with('sparse'),
             'dense': ours_with('dense')}, params, data)


def report(result: dict) -> List[str]:
    c, d, res = result['config'], result['data'], result['results']
    lines = common.header('torch_lie vs lie-transformer-pytorch: SE(3) '
                          'forward + backward on G2 molecules', result)
    lines += [
        f'{c["batch_size"]} molecules of {min(d["atoms"])}-'
        f'{max(d["atoms"])} atoms (padded to {d["padded_atoms"]}), '
        f'{c["lift_samples"]} SE(3) lift samples per atom '
        f'({d["lifted_elements"]} lifted elements, '
        f'{d["padded_lifted_elements"]} padded), full attention; width '
        f'{c["hidden"]}, depth {c["depth"]}, {c["heads"]} heads of '
        f'{c["hidden"] // c["heads"]} channels, MLPs 4x wide; lifting, '
        f'forward, sum of outputs and backward timed. Peer: '
        f'lie-transformer-pytorch {result["peer_version"]}.', '',
        '| implementation | params | median time (min-max) | peak memory GB '
        '| ratio vs peer | matrix GFLOP |', '|---|---|---|---|---|---|']
    for key, name in NAMES.items():
        r = res[key]
        lines.append(
            f'| {name} | {r["params"]:,} | {common.fmt_time(r)} | '
            f'{r["peak_memory_gb"]:.2f} | {r["speedup_vs_peer"]:.2f}x | '
            f'{r["gflop"]:.2f} |')
    best = max(('sparse', 'dense'), key=lambda k: res[k]['speedup_vs_peer'])
    speedup = res[best]['speedup_vs_peer']
    flop_ratio = res['peer']['gflop'] / max(res[best]['gflop'], 1e-12)
    lines += ['', f'The default `kernel=\'auto\'` runs the '
              f'{d["auto_kernel"]} kernel on these molecules.', '',
              f'Target: torch_lie at least {TARGET:g}x faster than the '
              f'peer: **{"met" if speedup >= TARGET else "MISSED"}** '
              f'({best} kernel {speedup:.1f}x faster; the peer does '
              f'{flop_ratio:.1f}x its matrix FLOPs). Plain `torch.mm` in '
              f'this run: {result["mm_gflops"]:.0f} GFLOP/s.']
    if result['quick']:
        lines[-1] += (' A --quick smoke run: sizes too small to judge the '
                      'target.')
    lines += ['', 'Caveat: in version 0.0.17 the peer masks its neighbourhoods '
              'the wrong way round (`extract_neighborhood` sets the distance '
              'of every *valid* element to the maximum), so every element '
              'falls outside every ball and its attention is uniform, with '
              'zero gradients for its query, key and location weights. It '
              'still does all the work of its design, which is what this '
              'times, but it cannot learn as released.']
    return lines


def main(argv: Optional[List[str]] = None) -> dict:
    p = common.parser(__doc__)
    p.add_argument('--batch-size', type=int, default=16,
                   help='molecules per batch')
    p.add_argument('--hidden', type=int, default=128, help='model width')
    p.add_argument('--depth', type=int, default=2, help='attention blocks')
    p.add_argument('--heads', type=int, default=8, help='attention heads')
    p.add_argument('--lift-samples', type=int, default=4,
                   help='SE(3) elements per atom')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    if lie_transformer_pytorch is None:
        p.exit(0, "skipped: the peer 'lie_transformer_pytorch' is not "
               "installed; install it with pip install -e '.[bench]' (or "
               "pip install --no-deps lie-transformer-pytorch einops)\n")
    if args.quick:
        args.batch_size, args.hidden, args.depth = 4, 32, 1
        args.heads, args.lift_samples, args.repeats = 4, 2, 2
    device = common.setup(args)
    machine = common.machine(device)  # load average at the start
    fns, params, data = steps(args, device)

    times = common.interleaved(fns, args.repeats, device)
    results = {}
    for key, fn in fns.items():
        results[key] = {**times[key], 'params': params[key],
                        'peak_memory_gb': common.peak_memory_gb(fn, device),
                        'gflop': common.count_flops(fn) / 1e9}
    for r in results.values():
        r['speedup_vs_peer'] = results['peer']['median_s'] / r['median_s']
    result = {
        'config': {key: getattr(args, key) for key in
                   ('batch_size', 'hidden', 'depth', 'heads', 'lift_samples',
                    'seed')},
        'data': data, 'repeats': args.repeats, 'quick': args.quick,
        'peer_version': importlib.metadata.version('lie-transformer-pytorch'),
        'mm_gflops': common.mm_gflops(device), 'results': results,
        'target_speedup': TARGET, 'machine': machine,
        'command': common.command()}
    common.write('peer', result, report(result), args)
    return result


if __name__ == '__main__':
    main()
