r"""How long the paper's QM9 run takes here: one training step and one
evaluation batch of the paper's model (``examples/qm9.py --paper-layout``:
``LieTransformer.paper('qm9_paper')``, 55.5 M parameters, its Monte Carlo
neighbourhoods) on real QM9 molecules (the first batch of the paper's
training split), its matrix FLOPs, peak memory and the same run's
:func:`torch.mm` speed, projected to an epoch (1,000 steps of 100 and the
17,748 validation molecules) and to the paper's 500 epochs::

    python benchmarks/qm9_paper_run.py --root data/QM9 --threads 1
    python benchmarks/qm9_paper_run.py --root data/QM9 --device cuda

The projection is steps times the median step: loading, the test set and
checkpoints are left out.
"""
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
from torch_geometric.datasets import QM9  # noqa: E402
from torch_geometric.loader import DataLoader  # noqa: E402

from benchmarks.common import (  # noqa: E402
    command,
    count_flops,
    machine,
    mm_gflops,
    parser,
    peak_memory_gb,
    setup,
    synchronize,
    write,
)
from torch_lie.datasets import prepare_qm9  # noqa: E402
from torch_lie.datasets.qm9 import QM9_SPLIT, qm9_paper_splits  # noqa: E402
from torch_lie.nn import LieTransformer  # noqa: E402

EPOCHS = 500


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument('--root', default='data/QM9')
    p.add_argument('--batch-size', type=int, default=100)
    args = p.parse_args(argv)
    device = setup(args)
    prepare_qm9(args.root)
    train = qm9_paper_splits(QM9(args.root), 'homo')[0]
    batch = next(iter(DataLoader(train, batch_size=args.batch_size)))
    batch = batch.to(device)
    torch.manual_seed(0)
    model = LieTransformer.paper('qm9_paper').to(device)
    optimizer = torch.optim.Adam(model.parameters(), betas=(0.5, 0.9))

    def step():
        optimizer.zero_grad()
        loss = (model(batch).view(-1) - batch.y.view(-1)).abs().mean()
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def evaluate():
        model(batch)

    def timed(fn, repeats):
        times = []
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    repeats = 1 if args.quick else args.repeats
    step()  # warm-up
    step_s, eval_s = timed(step, repeats), timed(evaluate, repeats)
    flops = count_flops(lambda: (model(batch).sum().backward()))
    mm = mm_gflops(device)
    memory = peak_memory_gb(step, device)
    steps = QM9_SPLIT[0] // args.batch_size
    epoch_s = steps * step_s + QM9_SPLIT[1] / args.batch_size * eval_s
    result = {
        'machine': machine(device), 'command': command(),
        'parameters': sum(p.numel() for p in model.parameters()),
        'batch_size': args.batch_size,
        'atoms_per_molecule': batch.num_nodes / batch.num_graphs,
        'step_s': step_s, 'eval_batch_s': eval_s, 'repeats': repeats,
        'matrix_tflop_per_step': flops / 1e12,
        'efficiency_vs_mm': flops / step_s / 1e9 / mm, 'mm_gflops': mm,
        'peak_memory_gb': memory, 'epoch_s': epoch_s,
        'run_hours': EPOCHS * epoch_s / 3600}
    m = result['machine']
    lines = ["# The paper's QM9 run, projected", '',
             f"Command: `{result['command']}`. Machine: {m.get('gpu', m['cpu'])}, "
             f"{m['threads']} threads, torch {m['torch']}; load average "
             f"{m['load_average']} at the start.", '',
        f"{result['parameters']:,} parameters, batch {args.batch_size} of "
        f"real QM9 molecules ({result['atoms_per_molecule']:.1f} atoms on "
        f"average): a training step {step_s:.3g} s (median of {repeats}), "
        f"{flops / 1e12:.2f} TFLOP of matrix products "
        f"({result['efficiency_vs_mm']:.0%} of the same run's torch.mm, "
        f"{mm:.0f} GFLOP/s), peak memory {memory:.1f} GB; an evaluation "
        f"batch {eval_s:.3g} s.", '',
        f"Projected: an epoch ({steps:,} steps and {QM9_SPLIT[1]:,} "
        f"validation molecules) {epoch_s / 3600:.3g} h; the paper's {EPOCHS} "
        f"epochs {result['run_hours']:,.0f} h ({result['run_hours'] / 24:,.1f} "
        f"days) on this device."]
    write('qm9_paper_run', result, lines, args)
    return result


if __name__ == '__main__':
    main()
