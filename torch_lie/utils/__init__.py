r"""Utility functions."""
from torch_lie.utils.atomic import atomic_file, atomic_save
from torch_lie.utils.checks import (
    check_choice,
    check_compiler,
    check_device,
    check_float,
    check_int,
)
from torch_lie.utils.radius import radius_graph

__all__ = [
    'atomic_file',
    'atomic_save',
    'check_choice',
    'check_compiler',
    'check_device',
    'check_float',
    'check_int',
    'radius_graph',
]
