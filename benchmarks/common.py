r"""What every benchmark shares: interleaved timing with medians, matrix
FLOPs, the speed of a plain :func:`torch.mm` in the same run, peak memory
of a call, the machine, the command line, and the results files.

Peak memory is measured around one call in the running process: on CUDA the
peak of :func:`torch.cuda.max_memory_allocated`, on CPU the peak resident
set size (``VmHWM``, reset through ``/proc/self/clear_refs`` after returning
freed heap to the system with ``malloc_trim``). The CPU figure includes
the process's baseline (``torch``, parameters, inputs), like the peak RSS
figures of the original implementation it is compared with.
"""
import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional

import torch
from ase import Atoms
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

RESULTS = os.path.join(os.path.dirname(__file__), 'results')
#: Where runs write unless told to update the committed results.
SCRATCH = os.path.join('runs', 'benchmarks')
QM9_ELEMENTS = ('H', 'C', 'N', 'O', 'F')
QM9_MEAN_ATOMS = 18.0  # QM9's mean number of atoms, hydrogens included
#: torch.mm's speed on this machine type when the original implementation's
#: figures were measured (DESIGN.md: 150-170 GFLOP/s on 2 threads): the
#: lower end, so that calibrating by it never flatters torch_lie.
ORIGINAL_MM_GFLOPS = 150.0


def parser(description: str) -> argparse.ArgumentParser:
    r"""The options every benchmark takes."""
    p = argparse.ArgumentParser(
        description=description.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--quick', action='store_true',
                   help='small sizes and few repeats (a smoke run)')
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    p.add_argument('--repeats', type=int, default=5,
                   help='timed repeats of each implementation')
    p.add_argument('--threads', type=int, default=None,
                   help='torch threads (default: torch\'s choice)')
    p.add_argument('--out', default=SCRATCH,
                   help='results directory (a scratch folder: the committed '
                   'results change only with --update-results)')
    p.add_argument('--update-results', action='store_true',
                   help=f'write to the committed results, {RESULTS}')
    return p


def setup(args: argparse.Namespace) -> torch.device:
    r"""Applies :obj:`--threads`, checks :obj:`--device` and seeds."""
    if args.update_results:
        args.out = RESULTS
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        sys.exit("error: '--device cuda' but CUDA is not available")
    torch.manual_seed(0)
    return device


def synchronize(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved(fns: Dict[str, Callable[[], object]], repeats: int,
                device: torch.device, warmup: int = 1) -> Dict[str, dict]:
    r"""Times every function :obj:`repeats` times, the implementations
    alternating within each round (so that a noisy neighbour hits all of
    them alike), after :obj:`warmup` untimed calls each. Returns the median,
    minimum, maximum and all times (seconds) per name."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: {'median_s': statistics.median(t), 'min_s': min(t),
                   'max_s': max(t), 'times_s': t}
            for name, t in times.items()}


def mm_gflops(device: torch.device, size: int = 1024,
              repeats: int = 20) -> float:
    r"""GFLOP/s of a plain float32 :obj:`size x size` :func:`torch.mm`."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


class MatmulFlops(TorchDispatchMode):
    r"""Counts the FLOPs of the operators :mod:`torch.utils.flop_counter`
    has formulas for (matrix products, convolutions, attention), forward
    and backward. (:class:`~torch.utils.flop_counter.FlopCounterMode`
    itself installs module hooks that fail under :func:`torch.autograd.grad`
    with :obj:`create_graph=True`; its formulas are what this uses.)"""
    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.flops += count(*args, **kwargs, out_val=out)
        return out


def count_flops(fn: Callable[[], object]) -> int:
    r"""Matrix FLOPs of one call of :obj:`fn`."""
    counter = MatmulFlops()
    with counter:
        fn()
    return counter.flops


def qm9_sized_molecules(batch_size: int, seed: int = 0) -> List[Atoms]:
    r"""A seeded batch of real geometries from :obj:`ase.collections.g2`,
    as close to QM9's molecules as g2 has: QM9's elements, at most 9 heavy
    atoms and at least 10 atoms (22 molecules of 10 to 14 atoms; QM9's
    average is 18). Each molecule appears at most
    :obj:`ceil(batch_size / 22)` times."""
    from ase.collections import g2

    pool = []
    for name in sorted(g2.names):
        atoms = g2[name]
        if (set(atoms.get_chemical_symbols()) <= set(QM9_ELEMENTS)
                and len(atoms) >= 10 and (atoms.numbers > 1).sum() <= 9):
            atoms.info['name'] = name
            pool.append(atoms)
    gen = torch.Generator().manual_seed(seed)
    order = torch.cat([torch.randperm(len(pool), generator=gen)
                       for _ in range(-(-batch_size // len(pool)))])
    return [pool[i] for i in order[:batch_size].tolist()]


def _status_gb(key: str) -> float:
    with open('/proc/self/status') as f:
        line = next(line for line in f if line.startswith(key))
    return int(line.split()[1]) / 1e6


def peak_memory_gb(fn: Callable[[], object], device: torch.device) -> float:
    r"""Peak memory (GB) during one call of :obj:`fn`: allocated CUDA memory
    on GPUs, resident set size of the process on CPUs (see the module
    docstring)."""
    gc.collect()
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 1e9
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError:
        pass
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets VmHWM to the current RSS
    fn()
    return _status_gb('VmHWM')


class OutOfMemory(Exception):
    r"""Raised by :func:`memory_limit` when a call needed more."""


@contextmanager
def memory_limit(gb: float) -> Iterator[None]:
    r"""Lets the block allocate at most about :obj:`gb` more gigabytes of
    address space (CPU), and turns an allocation failure into
    :class:`OutOfMemory`: a case that does not fit fails cleanly instead of
    swapping or being killed."""
    with open('/proc/self/status') as f:
        size = next(int(line.split()[1]) * 1024 for line in f
                    if line.startswith('VmSize'))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + int(gb * 1e9), hard))
    try:
        yield
    except (RuntimeError, MemoryError) as e:
        if not isinstance(e, MemoryError) and 'memory' not in str(e):
            raise
        raise OutOfMemory(f'out of memory (> {gb:g} GB)') from None
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        gc.collect()


def fits(fn: Callable[[], object], gb: float) -> Optional[str]:
    r"""Calls :obj:`fn` once within :func:`memory_limit`; returns why it
    did not fit, or :obj:`None`."""
    try:
        with memory_limit(gb):
            fn()
    except OutOfMemory as e:
        return str(e)
    return None


def machine(device: torch.device) -> dict:
    r"""The machine a result was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f
                       if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    info = {'cpu': cpu, 'cpus': os.cpu_count(),
            'threads': torch.get_num_threads(), 'torch': torch.__version__,
            'python': platform.python_version(), 'device': str(device),
            'load_average': round(os.getloadavg()[0], 2)}
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def command() -> str:
    r"""The command line that ran this benchmark."""
    spec = getattr(sys.modules['__main__'], '__spec__', None)
    program = (f'-m {spec.name}' if spec is not None else
               os.path.relpath(sys.argv[0]))
    return ' '.join(['python', program] + sys.argv[1:])


def write(name: str, result: dict, lines: List[str], args) -> str:
    r"""Writes :obj:`result` (with the machine and command) as
    :obj:`{name}.json` and the markdown :obj:`lines` as :obj:`{name}.md`
    in :obj:`args.out` (:obj:`{name}_quick.*` for :obj:`--quick` runs and
    :obj:`{name}_cuda.*` on GPUs); returns the path without extension."""
    if args.quick:
        name += '_quick'
    if torch.device(args.device).type == 'cuda':
        name += '_cuda'
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, name)
    with open(path + '.json', 'w') as f:
        json.dump(result, f, indent=1)
    with open(path + '.md', 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines), flush=True)
    return path


def header(title: str, result: dict) -> List[str]:
    r"""The first lines of a markdown report: title, command, machine."""
    m = result['machine']
    where = (m['gpu'] if 'gpu' in m else
             f'{m["cpu"]}, {m["cpus"]} CPUs, {m["threads"]} threads')
    return [f'# {title}', '',
            f'Command: `{result["command"]}`. Machine: {where}, torch '
            f'{m["torch"]}; load average {m["load_average"]} at the start. '
            f'Times are medians (min-max) of {result["repeats"]} interleaved '
            f'repeats after warm-up.', '']


def fmt_time(entry: Optional[dict]) -> str:
    if entry is None:
        return '-'
    if 'skipped' in entry:
        return entry['skipped']
    return (f'{entry["median_s"] * 1e3:.1f} ({entry["min_s"] * 1e3:.1f}-'
            f'{entry["max_s"] * 1e3:.1f}) ms')
