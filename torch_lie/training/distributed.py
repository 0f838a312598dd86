r"""Small helpers for data-parallel training scripts launched by
:obj:`torchrun` (one process per device, on one or several machines).

.. code-block:: python

    with init_distributed('cuda') as ctx:   # plain process: world size 1
        model = ctx.wrap(net)                # DistributedDataParallel
        with ctx.main_process_first():       # e.g. processing a data set
            dataset = QM9(root)
        ...
        total, count = ctx.all_reduce_sum(total, count)
        if ctx.is_main:
            torch.save(...)
"""
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, List, Tuple, Union

import torch
import torch.distributed as dist

#: Environment variables :obj:`torchrun` sets in each process it starts.
TORCHRUN_ENV = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')


def launched_by_torchrun() -> bool:
    r"""Whether this process was started by :obj:`torchrun` (or
    :obj:`python -m torch.distributed.run`)."""
    return all(name in os.environ for name in TORCHRUN_ENV)


@dataclass(frozen=True)
class DistributedContext:
    r"""Where a process stands in a data-parallel run: its :obj:`rank`
    among :obj:`world_size` processes, its :obj:`local_rank` on its machine
    and its :obj:`device`. :obj:`is_distributed` is :obj:`False` for a plain
    process (rank 0 of 1), for which every collective below is a no-op."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')
    is_distributed: bool = False

    @property
    def is_main(self) -> bool:
        r"""Whether this is rank 0, the process that writes logs and
        files."""
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        r""":obj:`module` in a
        :class:`~torch.nn.parallel.DistributedDataParallel` (which
        broadcasts rank 0's weights) in a distributed run, :obj:`module`
        itself otherwise."""
        if not self.is_distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            module,
            device_ids=[self.device] if self.device.type == 'cuda' else None)

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    @contextmanager
    def main_process_first(self) -> Iterator[None]:
        r"""Runs the body on rank 0 first and on the other ranks after it
        has finished (e.g. a data set that processes its files on first
        use). Should rank 0 fail, the others are not released: the launcher
        ends them."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def all_reduce_sum(self, *values: Union[float, int]) -> Tuple[float, ...]:
        r"""Sums numbers over all processes (in float64)."""
        if not self.is_distributed:
            return tuple(float(v) for v in values)
        t = torch.tensor([float(v) for v in values], dtype=torch.float64,
                         device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return tuple(t.tolist())

    def all_gather_object(self, obj: Any) -> List[Any]:
        r"""The picklable :obj:`obj` of every process, in rank order."""
        if not self.is_distributed:
            return [obj]
        out: List[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


@contextmanager
def init_distributed(device: Union[str, torch.device] = 'cpu',
                     ) -> Iterator[DistributedContext]:
    r"""Joins the process group of a :obj:`torchrun` launch for the body of
    the :obj:`with` block, and leaves it
    (:func:`torch.distributed.destroy_process_group`) at its end, also on
    errors.

    The backend is :obj:`nccl` for a CUDA :obj:`device`, each process then
    using :obj:`cuda:LOCAL_RANK` (an index in :obj:`device` is ignored), and
    :obj:`gloo` otherwise. The rendezvous comes from the environment
    :obj:`torchrun` sets (:obj:`MASTER_ADDR`, :obj:`MASTER_PORT`,
    :obj:`RANK`, :obj:`WORLD_SIZE`). Outside :obj:`torchrun`, or when the
    caller already initialised a process group, nothing is initialised and
    the context is that of a plain process or of the existing group."""
    device = torch.device(device)
    if not launched_by_torchrun() or not dist.is_available():
        yield DistributedContext(device=device)
        return
    local_rank = int(os.environ['LOCAL_RANK'])
    if device.type == 'cuda':
        device = torch.device('cuda', local_rank)
        torch.cuda.set_device(device)
    if dist.is_initialized():  # the caller's group: the caller leaves it
        yield DistributedContext(dist.get_rank(), dist.get_world_size(),
                                 local_rank, device, True)
        return
    if device.type == 'cuda':
        dist.init_process_group('nccl', device_id=device)
    else:
        dist.init_process_group('gloo')
    try:
        yield DistributedContext(dist.get_rank(), dist.get_world_size(),
                                 local_rank, device, True)
    finally:
        dist.destroy_process_group()
