r"""Transforms."""
from torch_lie.transforms.lift import Lift
from torch_lie.transforms.random_motion import RandomMotion
from torch_lie.transforms.random_rotation import RandomRotation

__all__ = ['Lift', 'RandomMotion', 'RandomRotation']
