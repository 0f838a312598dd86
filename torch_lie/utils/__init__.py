r"""Utility functions."""
from torch_lie.utils.distributed import DistributedContext, init_distributed
from torch_lie.utils.radius import radius_graph

__all__ = ['radius_graph', 'DistributedContext', 'init_distributed']
