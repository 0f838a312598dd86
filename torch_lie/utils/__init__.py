r"""Utility functions."""
from torch_lie.utils.atomic import atomic_save
from torch_lie.utils.distributed import DistributedContext, init_distributed
from torch_lie.utils.radius import radius_graph

__all__ = ['atomic_save', 'radius_graph', 'DistributedContext', 'init_distributed']
