r"""Lie groups, their actions on :math:`\mathbb{R}^n`, lifts and pair
embeddings."""
from torch_lie.groups.group import Group
from torch_lie.groups.resolver import group_resolver
from torch_lie.groups.rigid import RigidMotionGroup, RotationGroup
from torch_lie.groups.se2 import SE2
from torch_lie.groups.se3 import SE3
from torch_lie.groups.so2 import SO2
from torch_lie.groups.so3 import SO3
from torch_lie.groups.translation import T, Trivial

__all__ = [
    'Group',
    'RigidMotionGroup',
    'RotationGroup',
    'T',
    'Trivial',
    'SO2',
    'SE2',
    'SO3',
    'SE3',
    'group_resolver',
]
