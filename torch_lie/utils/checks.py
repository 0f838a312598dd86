import math
import shutil
from numbers import Integral, Real
from typing import Any, Iterable, Optional, Union

import torch


def check_int(name: str, value: Any, low: Optional[int] = 1,
              high: Optional[int] = None) -> int:
    r"""Returns :obj:`value` as an :obj:`int` if it is an integer (not a
    :obj:`bool` or a float such as :obj:`2.0`) in :obj:`[low, high]`
    (:obj:`None`: unbounded; by default: positive), and raises a
    :class:`ValueError` naming :obj:`name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"'{name}' must be an int (got {value!r})")
    value = int(value)
    if ((low is not None and value < low)
            or (high is not None and value > high)):
        bound = (f'<= {high}' if low is None else f'>= {low}' if high is None
                 else f'in [{low}, {high}]')
        raise ValueError(f"'{name}' must be {bound} (got {value})")
    return value


def check_float(name: str, value: Any, low: Optional[float] = None,
                high: Optional[float] = None, low_open: bool = False,
                high_open: bool = False) -> float:
    r"""Returns :obj:`value` as a :obj:`float` if it is a finite real number
    (not a :obj:`bool` or a string) in the interval from :obj:`low` to
    :obj:`high` (open at an end with :obj:`low_open` / :obj:`high_open`;
    :obj:`None`: unbounded), and raises a :class:`ValueError` naming
    :obj:`name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, Real) or \
            not math.isfinite(value):
        raise ValueError(f"'{name}' must be a finite number (got {value!r})")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open
                                     else value > high)
    if too_low or too_high:
        left = '(-inf' if low is None else f"{'(' if low_open else '['}{low}"
        right = 'inf)' if high is None else f"{high}{')' if high_open else ']'}"
        raise ValueError(f"'{name}' must be in {left}, {right} (got {value})")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    r"""Returns :obj:`value` if it is one of :obj:`choices`, and raises a
    :class:`ValueError` naming :obj:`name` and the choices otherwise."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"'{name}' must be one of {choices} (got {value!r})")
    return value


def check_device(device: Union[str, torch.device]) -> torch.device:
    r"""Returns :obj:`device` as a :class:`torch.device` if this torch can
    use it, and raises a :class:`ValueError` that says why not and what to
    do otherwise (e.g. :obj:`"cuda"` on a CPU build)."""
    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"Unknown device {device!r} ({e})") from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        why = ('this torch is a CPU build' if torch.version.cuda is None
               else 'no CUDA device is visible')
        raise ValueError(f"Device {str(device)!r} asked for, but {why}: use "
                         f"the CPU, or install torch for your CUDA version "
                         f"(https://pytorch.org)")
    return device


def check_compiler() -> None:
    r"""Raises a :class:`ValueError` unless a C++ compiler (:obj:`c++`,
    :obj:`g++` or :obj:`clang++`) is on the :obj:`PATH`:
    :func:`torch.compile`'s Inductor backend needs one (and otherwise fails
    only at the first call, with a raw :obj:`InvalidCxxCompiler`)."""
    if not any(map(shutil.which, ('c++', 'g++', 'clang++'))):
        raise ValueError('compiling needs a C++ compiler (c++, g++ or '
                         'clang++) on the PATH: install one, or do not '
                         'compile (e.g. no --compile)')
