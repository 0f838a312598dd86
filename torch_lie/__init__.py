r"""torch_lie: self-attention equivariant to Lie groups (the LieTransformer)
for PyTorch Geometric."""
import torch_lie.data
import torch_lie.datasets
import torch_lie.groups
import torch_lie.io
import torch_lie.nn
import torch_lie.testing
import torch_lie.training
import torch_lie.transforms
import torch_lie.utils
import torch_lie.visualization

__version__ = '0.2.0'

__all__ = ['__version__']
