import os
import pickle
import random
from typing import Any, Dict, Optional

import torch
from torch.optim.lr_scheduler import LambdaLR

from torch_lie.training.distributed import DistributedContext
from torch_lie.utils import atomic_save

#: The errors :func:`torch.load` raises for a file that is not a complete
#: checkpoint (truncated, empty, another format).
_UNREADABLE = (OSError, EOFError, RuntimeError, ValueError, KeyError,
               pickle.UnpicklingError)


def read_checkpoint(path: str, fix: str = 'remove it and start again'
                    ) -> Dict[str, Any]:
    r"""Loads the checkpoint at :obj:`path` (a dictionary written by
    :func:`torch.save`), raising a :class:`ValueError` that names the file
    and :obj:`fix` when it is truncated or not a checkpoint."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at '{path}'")
    try:
        state = torch.load(path, map_location='cpu', weights_only=False)
    except _UNREADABLE as error:
        raise ValueError(f"'{path}' is not a readable checkpoint (truncated "
                         f"or another kind of file: {type(error).__name__}: "
                         f"{error}); {fix}") from None
    if not isinstance(state, dict):
        raise ValueError(f"'{path}' holds a {type(state).__name__}, not a "
                         f"checkpoint; {fix}")
    return state


def get_rng_state(generator: Optional[torch.Generator] = None
                  ) -> Dict[str, Any]:
    r"""The random state of this process (:mod:`torch` on the CPU and every
    CUDA device, :mod:`random`) and of :obj:`generator`."""
    state = {'torch': torch.get_rng_state(), 'python': random.getstate()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state['generator'] = generator.get_state()
    return state


def set_rng_state(state: Dict[str, Any],
                  generator: Optional[torch.Generator] = None) -> None:
    r"""Restores a state of :func:`get_rng_state`."""
    torch.set_rng_state(state['torch'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    if generator is not None and 'generator' in state:
        generator.set_state(state['generator'])


def config_differences(saved: Dict[str, Any],
                       requested: Dict[str, Any]) -> str:
    r"""The entries in which two configurations differ, as
    :obj:`"a=1, b=2 (requested a=3, b=4)"`, or an empty string."""
    keys = sorted(k for k in saved.keys() | requested.keys()
                  if saved.get(k) != requested.get(k))
    if not keys:
        return ''
    return (', '.join(f'{k}={saved.get(k)!r}' for k in keys) +
            ' (requested ' +
            ', '.join(f'{k}={requested.get(k)!r}' for k in keys) + ')')


class Checkpointer:
    r"""Keeps the state of a training run in :obj:`directory`:
    :obj:`checkpoint.pt`, everything needed to resume (model, optimiser,
    scheduler, random states and whatever the loop passes, e.g. the epoch
    and its history), and :obj:`best.pt`, the weights of the best model so
    far. Files are written atomically, so a run killed at any moment resumes
    from its last complete checkpoint.

    A run never silently replaces another: if :obj:`directory` holds a
    checkpoint, :meth:`restore` resumes it when :obj:`resume` is set (after
    checking that it was made with the same :obj:`config`), starts over
    when :obj:`overwrite` is set, and otherwise raises a :class:`ValueError`
    that says which flag to pass.

    .. code-block:: python

        ckpt = Checkpointer('runs/x', config, resume=args.resume)
        state = ckpt.restore(model, optimizer, scheduler, generator)
        for epoch in range(state.get('epoch', 0) + 1, epochs + 1):
            ...
            if improved:
                ckpt.save_best(model)
            ckpt.save(model, optimizer, scheduler, generator, epoch=epoch)

    Args:
        directory (str): The run's folder (created if needed).
        config (dict): What defines the run (model and training settings
            that a resumed run must share; not the number of epochs, which a
            resumed run may extend).
        resume (bool, optional): Continue the run in :obj:`directory`.
            (default: :obj:`False`)
        overwrite (bool, optional): Start over, removing the run in
            :obj:`directory`. (default: :obj:`False`)
        flags (dict, optional): How a user asks for :obj:`resume` and
            :obj:`overwrite` (e.g. the names of command-line options), quoted
            in error messages. (default: :obj:`{'resume': '--resume',
            'overwrite': '--overwrite'}`)
        ctx (DistributedContext, optional): This process's place in a
            data-parallel run: every process restores (and its own random
            state), every process calls :meth:`save` (which gathers their
            random states) and the main process writes. (default: a single
            process)
    """
    name = 'checkpoint.pt'
    best_name = 'best.pt'

    def __init__(self, directory: str, config: Dict[str, Any],
                 resume: bool = False, overwrite: bool = False,
                 flags: Optional[Dict[str, str]] = None,
                 ctx: Optional[DistributedContext] = None):
        if resume and overwrite:
            raise ValueError("'resume' and 'overwrite' exclude each other")
        self.directory = directory
        self.config = dict(config)
        self.resume = resume
        self.overwrite = overwrite
        self.flags = {'resume': '--resume', 'overwrite': '--overwrite',
                      **(flags or {})}
        self.ctx = ctx or DistributedContext()
        self.is_main = self.ctx.is_main
        #: The number of processes that wrote the restored checkpoint.
        self.saved_world_size: Optional[int] = None

    @property
    def path(self) -> str:
        return os.path.join(self.directory, self.name)

    @property
    def best_path(self) -> str:
        return os.path.join(self.directory, self.best_name)

    def restore(self, model: torch.nn.Module,
                optimizer: Optional[torch.optim.Optimizer] = None,
                scheduler: Optional[Any] = None,
                generator: Optional[torch.Generator] = None
                ) -> Dict[str, Any]:
        r"""Prepares the run: returns :obj:`{}` for a new run, or restores
        the saved states into the arguments and returns what was passed to
        :meth:`save` as keywords. A process of a distributed run whose rank
        the checkpoint has no random state for (a run resumed by more
        processes) keeps its own."""
        exists = os.path.exists(self.path)
        if not self.resume:
            if exists and not self.overwrite:
                raise ValueError(
                    f"'{self.directory}' holds a run ('{self.name}'): pass "
                    f"{self.flags['resume']} to continue it, "
                    f"{self.flags['overwrite']} to start over, or choose "
                    f"another output folder")
            self.ctx.barrier()  # every process has looked before removal
            if self.is_main:
                os.makedirs(self.directory, exist_ok=True)
                for path in (self.path, self.best_path):
                    if os.path.exists(path):
                        os.remove(path)
            return {}
        if not exists:
            raise FileNotFoundError(
                f"{self.flags['resume']}: no checkpoint at '{self.path}'")
        fix = (f"remove it, or pass {self.flags['overwrite']} to start over")
        ckpt = read_checkpoint(self.path, fix)
        if 'config' not in ckpt or 'model' not in ckpt:
            raise ValueError(f"'{self.path}' is not a checkpoint of a "
                             f"training run; {fix}")
        diff = config_differences(ckpt['config'], self.config)
        if diff:
            raise ValueError(f"{self.flags['resume']}: the run in "
                             f"'{self.directory}' was made with {diff}")
        model.load_state_dict(ckpt['model'])
        if optimizer is not None:
            optimizer.load_state_dict(ckpt['optimizer'])
        if scheduler is not None:
            scheduler.load_state_dict(ckpt['scheduler'])
            if isinstance(scheduler, LambdaLR):
                # The restored step's rate under this run's lengths (a run
                # resumed with more epochs continues a stretched schedule).
                step = scheduler.last_epoch
                rates = [base * fn(step) for base, fn in
                         zip(scheduler.base_lrs, scheduler.lr_lambdas)]
                for group, rate in zip(scheduler.optimizer.param_groups,
                                       rates):
                    group['lr'] = rate
                scheduler._last_lr = rates
        self.saved_world_size = len(ckpt['rng'])
        if self.ctx.rank < len(ckpt['rng']):
            set_rng_state(ckpt['rng'][self.ctx.rank], generator)
        return ckpt['state']

    def save(self, model: torch.nn.Module,
             optimizer: Optional[torch.optim.Optimizer] = None,
             scheduler: Optional[Any] = None,
             generator: Optional[torch.Generator] = None,
             **state: Any) -> None:
        r"""Writes the checkpoint: the states of the arguments, the random
        states of all processes and :obj:`state` (returned by
        :meth:`restore`)."""
        rng = self.ctx.all_gather_object(get_rng_state(generator))
        if not self.is_main:
            return
        atomic_save({
            'config': self.config,
            'model': model.state_dict(),
            'optimizer': None if optimizer is None else optimizer.state_dict(),
            'scheduler': None if scheduler is None else scheduler.state_dict(),
            'rng': rng,
            'state': state,
        }, self.path)

    def save_best(self, model: torch.nn.Module, **extra: Any) -> None:
        r"""Writes the weights of :obj:`model` to :obj:`best.pt`, with the
        run's configuration and :obj:`extra` (e.g. what predictions need
        besides the weights)."""
        if self.is_main:
            atomic_save({'config': self.config, 'model': model.state_dict(),
                         **extra}, self.best_path)

    def load_best(self, model: torch.nn.Module) -> Dict[str, Any]:
        r"""Loads the weights saved by :meth:`save_best` into :obj:`model`
        and returns the file's other entries."""
        state = read_checkpoint(self.best_path, 'train the run again')
        model.load_state_dict(state.pop('model'))
        return state
