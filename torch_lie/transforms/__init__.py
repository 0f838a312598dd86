r"""Transforms."""
from torch_lie.transforms.lift import Lift, LiftedGraph
from torch_lie.transforms.random_rotation import RandomRotation

__all__ = ['Lift', 'LiftedGraph', 'RandomRotation']
