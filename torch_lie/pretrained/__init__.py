r"""Small pretrained models shipped with the package, each trained by a
command recorded in its file:

* :obj:`"springs-t2"`: a T(2) LieTransformer potential of the spring
  dynamics task, a :class:`~torch_lie.nn.models.HamiltonianDynamics`;
* :obj:`"constellation-t2"`: a T(2) :class:`~torch_lie.nn.LieTransformer`
  counting the shapes of constellations (logits :obj:`[B, 12]`, four heads of
  three counts);
* :obj:`"qm9-homo-t3"`: a T(3) :class:`~torch_lie.nn.LieTransformer` of
  QM9's HOMO energy (standardised: its file's :obj:`metrics` hold the mean,
  the standard deviation and its test MAE), trained on a CPU on 10,000
  molecules; ``examples/qm9.py predict --pretrained qm9-homo-t3 mol.xyz``
  prints meV.

.. code-block:: python

    from torch_lie.pretrained import from_pretrained, pretrained_info

    model = from_pretrained('springs-t2')
    pretrained_info('springs-t2')['command']  # how it was trained
"""
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Union

import torch

from torch_lie.nn import LieTransformer
from torch_lie.nn.models import (
    HamiltonianDynamics,
    LiePotential,
    SeparableHamiltonian,
)
from torch_lie.training import read_checkpoint
from torch_lie.transforms import Lift
from torch_lie.utils import atomic_save


def _springs(group: str, num_samples: int = 1, paper_layout: bool = False,
             compile: bool = False, **kwargs: Any) -> HamiltonianDynamics:
    lift = Lift(group, num_samples)
    potential = (LiePotential.paper(lift=lift, **kwargs) if paper_layout else
                 LiePotential(2, lift=lift, **kwargs))
    return HamiltonianDynamics(SeparableHamiltonian(potential),
                               compile=compile)


def _lie_transformer(group: Optional[str] = None, num_samples: int = 1,
                     r: Optional[float] = None,
                     max_num_neighbors: Optional[int] = None,
                     num_neighbor_samples: Optional[int] = None,
                     paper_layout: Union[bool, str] = False,
                     **kwargs: Any) -> LieTransformer:
    lift = None if group is None else Lift(
        group, num_samples, r=r, max_num_neighbors=max_num_neighbors,
        num_neighbor_samples=num_neighbor_samples)
    if paper_layout:  # the original's model of that task, resized by kwargs
        # True: files written before the task was named (constellation).
        task = 'constellation' if paper_layout is True else paper_layout
        if lift is not None:  # otherwise the task's own lift
            kwargs['lift'] = lift
        return LieTransformer.paper(task, **kwargs)
    if lift is None:
        raise ValueError("'group' is needed unless 'paper_layout' names a "
                         "task")
    return LieTransformer(lift=lift, **kwargs)


#: How each kind of model is built from the keyword arguments in its file
#: (the example scripts build their models with them too).
BUILDERS: Dict[str, Callable[..., torch.nn.Module]] = {
    'springs': _springs,
    'lie_transformer': _lie_transformer,
}


def available() -> List[str]:
    r"""The names of the shipped models."""
    here = os.path.dirname(__file__)
    return sorted(f[:-3] for f in os.listdir(here) if f.endswith('.pt'))


def _path(name: str) -> str:
    if os.path.sep in name or name.endswith('.pt'):
        return name
    names = available()
    if name not in names:
        raise ValueError(f"No pretrained model '{name}' (shipped: "
                         f"{', '.join(names) or 'none'}; or pass a path to a "
                         f"file written by save_pretrained)")
    return os.path.join(os.path.dirname(__file__), f'{name}.pt')


def _load(name: str) -> Dict[str, Any]:
    path = _path(name)
    state = read_checkpoint(path, 'pass a file written by save_pretrained')
    if state.get('builder') not in BUILDERS:
        raise ValueError(f"'{path}' was not written by save_pretrained")
    return state


def from_pretrained(name: str) -> torch.nn.Module:
    r"""The shipped model :obj:`name` (see :func:`available`), or the one
    in the file :obj:`name` written by :func:`save_pretrained`, with its
    weights, in evaluation mode."""
    state = _load(name)
    model = BUILDERS[state['builder']](**state['kwargs'])
    model.load_state_dict(state['model'])
    return model.eval()


def pretrained_info(name: str) -> Dict[str, Any]:
    r"""What the file of :obj:`name` records besides the weights: the
    builder and its keyword arguments, the command that trained the model
    and its test metrics."""
    state = _load(name)
    state.pop('model')
    return state


def save_pretrained(model: torch.nn.Module, path: str, builder: str,
                    kwargs: Dict[str, Any],
                    metrics: Optional[Dict[str, Any]] = None,
                    command: Optional[str] = None) -> None:
    r"""Writes :obj:`model` (built by :obj:`BUILDERS[builder](**kwargs)`)
    with its test :obj:`metrics` and the :obj:`command` that trained it
    (default: this process's command line), for :func:`from_pretrained`."""
    if command is None:
        command = ' '.join(['python'] + sys.argv)
    if builder not in BUILDERS:
        raise ValueError(f"Unknown builder '{builder}' (expected one of "
                         f"{sorted(BUILDERS)})")
    atomic_save({'builder': builder, 'kwargs': kwargs, 'command': command,
                 'metrics': metrics or {},
                 'model': {k: v.cpu() if torch.is_tensor(v) else v
                           for k, v in model.state_dict().items()}}, path)
