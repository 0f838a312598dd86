r"""Neural network layers and models."""
from torch_lie.nn.conv import LieSelfAttentionConv
from torch_lie.nn.models import LieTransformer, LieTransformerBlock

__all__ = ['LieSelfAttentionConv', 'LieTransformer', 'LieTransformerBlock']
