import math
import time
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import torch
from tqdm import tqdm

from torch_lie.training.checkpoint import Checkpointer

#: :obj:`step(batch)` of :func:`fit`: the batch's size and its sums of
#: training metrics, e.g. :obj:`(32, {'loss': 32 * loss.item()})`.
Step = Callable[[Any], Tuple[int, Dict[str, float]]]


def fit(model: torch.nn.Module, loader: Iterable, step: Step,
        optimizer: torch.optim.Optimizer, scheduler: Any, epochs: int,
        checkpointer: Checkpointer, *,
        evaluate: Optional[Callable[[], Dict[str, float]]] = None,
        eval_every: int = 1, monitor: Optional[str] = None,
        best_extra: Optional[Dict[str, Any]] = None,
        generator: Optional[torch.Generator] = None,
        schedule_per: str = 'step', progress: bool = True,
        log: Callable[[str], None] = print) -> Dict[str, Any]:
    r"""Trains :obj:`model` for :obj:`epochs` epochs, resuming the run of
    :obj:`checkpointer` and checkpointing after every epoch.

    For every batch of :obj:`loader` it zeroes the gradients and calls
    :obj:`step(batch)`, which computes the loss, calls
    :meth:`~torch.Tensor.backward` (once, or once per chunk of the batch)
    and returns the batch's size and its sums of training metrics; then it
    steps the optimiser and, unless :obj:`schedule_per` is
    :obj:`"epoch"`, the scheduler. Every :obj:`eval_every` epochs and after
    the last, :obj:`evaluate()` adds its metrics to the epoch's entry of the
    history; with :obj:`monitor`, the model of the lowest value of that
    metric is saved (:meth:`~Checkpointer.save_best`, with
    :obj:`best_extra`) and loaded back at the end.

    In a data-parallel run (the checkpointer's
    :class:`~torch_lie.training.DistributedContext`), the training metrics
    are summed over the processes, only the main process logs and shows
    progress, and a loader's :class:`~torch.utils.data.DistributedSampler`
    is set to the epoch.

    .. code-block:: python

        def step(batch):
            loss = F.mse_loss(model(batch), batch.y)
            loss.backward()
            return batch.num_graphs, {'mse': loss.item() * batch.num_graphs}

        result = fit(model, loader, step, optimizer, scheduler, epochs,
                     Checkpointer(out, config), monitor='val_mae',
                     evaluate=lambda: {'val_mae': mae(model, val_loader)})

    Args:
        model (torch.nn.Module): The model to checkpoint (not a
            :class:`~torch.nn.parallel.DistributedDataParallel` wrapper).
        loader (iterable): The training batches of one epoch.
        step (callable): The work of one batch, see above.
        optimizer (torch.optim.Optimizer): The optimiser.
        scheduler (optional): A learning-rate scheduler, or :obj:`None`.
        epochs (int): The number of epochs (a resumed run may extend it).
        checkpointer (Checkpointer): The run's folder and configuration.
        evaluate (callable, optional): Metrics of the model, e.g. on a
            validation set. (default: :obj:`None`)
        eval_every (int, optional): Evaluate every this many epochs (and
            after the last). (default: :obj:`1`)
        monitor (str, optional): The metric of :obj:`evaluate` whose lowest
            value selects the best model. (default: :obj:`None`)
        best_extra (dict, optional): Saved with the best model.
        generator (torch.Generator, optional): The loader's shuffling
            generator, checkpointed with the run.
        schedule_per (str, optional): Step the scheduler per :obj:`"step"`
            or per :obj:`"epoch"`. (default: :obj:`"step"`)
        progress (bool, optional): Show a progress bar per epoch.
            (default: :obj:`True`)
        log (callable, optional): Receives a line per epoch.
            (default: :obj:`print`)

    Returns:
        :obj:`{'history', 'resumed_from_epoch', 'train_time_s'}` and, with
        :obj:`monitor`, :obj:`'best_epoch'` and :obj:`'best_' + monitor`.

    Raises:
        FloatingPointError: If an epoch's training loss is not finite.
        ValueError: If an epoch has no batch, or with :obj:`monitor`, if no
            epoch gave a finite value of it.
    """
    if schedule_per not in ('step', 'epoch'):
        raise ValueError(f"'schedule_per' must be 'step' or 'epoch' (got "
                         f"{schedule_per!r})")
    ctx = checkpointer.ctx
    if not ctx.is_main:
        log = _silent
    state = checkpointer.restore(model, optimizer, scheduler, generator)
    history = state.get('history', [])
    best = state.get('best', {'epoch': 0, monitor: math.inf})
    if state:
        log(f"resumed from epoch {state['epoch']} of {checkpointer.path}")
        if checkpointer.saved_world_size != ctx.world_size:
            log(f'the checkpoint was written by '
                f'{checkpointer.saved_world_size} process(es), resuming with '
                f'{ctx.world_size}: the random draws differ from those of an '
                f'uninterrupted run')
    sampler = getattr(loader, 'sampler', None)
    for epoch in range(state.get('epoch', 0) + 1, epochs + 1):
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(epoch - 1)
        model.train()
        start, count, sums = time.perf_counter(), 0, {}
        bar = tqdm(loader, desc=f'epoch {epoch}/{epochs}', leave=False,
                   disable=not progress or not ctx.is_main)
        for batch in bar:
            optimizer.zero_grad()
            size, values = step(batch)
            optimizer.step()
            if scheduler is not None and schedule_per == 'step':
                scheduler.step()
            count += size
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix({k: f'{v / count:.4g}' for k, v in sums.items()},
                            refresh=False)
        if scheduler is not None and schedule_per == 'epoch':
            scheduler.step()
        count, *totals = ctx.all_reduce_sum(count, *sums.values())
        if count == 0:
            raise ValueError(f'the training loader gave no batch in epoch '
                             f'{epoch}: the training set is empty (or '
                             f'smaller than a batch that drops the last)')
        entry = {'epoch': epoch, **{f'train_{k}': v / count
                                    for k, v in zip(sums, totals)}}
        if not all(map(math.isfinite, entry.values())):
            raise FloatingPointError(f'non-finite training loss at epoch '
                                     f'{epoch}; try a smaller learning rate')
        if evaluate is not None and (epoch % eval_every == 0
                                     or epoch == epochs):
            entry.update(evaluate())
        improved = monitor is not None and entry.get(monitor,
                                                     math.inf) < best[monitor]
        if improved:
            best = {'epoch': epoch, monitor: entry[monitor]}
            checkpointer.save_best(model, **(best_extra or {}))
        entry['lr'] = optimizer.param_groups[0]['lr']
        entry['seconds'] = time.perf_counter() - start
        history.append(entry)
        log(f'epoch {epoch:4d}/{epochs}  ' + '  '.join(
            f'{k} {v:.4g}' for k, v in entry.items()
            if k not in ('epoch', 'lr', 'seconds')) + (' *' if improved
                                                       else ''))
        checkpointer.save(model, optimizer, scheduler, generator, epoch=epoch,
                          history=history, best=best)
    result = {'history': history, 'resumed_from_epoch': state.get('epoch'),
              'train_time_s': sum(h['seconds'] for h in history)}
    if monitor is not None:
        if best['epoch'] == 0:
            last = [h[monitor] for h in history if monitor in h][-1:]
            raise ValueError(f"no epoch gave a finite '{monitor}' (the last: "
                             f"{last[0] if last else 'none'}), so there is no "
                             f"best model to keep: check what evaluate() "
                             f"returns")
        ctx.barrier()  # the main process has written best.pt
        checkpointer.load_best(model)
        result.update({'best_epoch': best['epoch'],
                       f'best_{monitor}': best[monitor]})
    return result


def _silent(message: str) -> None:
    pass
