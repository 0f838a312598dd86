r"""Transforms."""
from torch_lie.transforms.lift import Lift, LiftedGraph

__all__ = ['Lift', 'LiftedGraph']
