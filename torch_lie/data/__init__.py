r"""Data objects."""
from torch_lie.data.lifted_data import LiftedData

__all__ = ['LiftedData']
