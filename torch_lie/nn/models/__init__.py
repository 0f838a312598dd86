r"""Models."""
from torch_lie.nn.models.lie_transformer import LieTransformer, LieTransformerBlock

__all__ = ['LieTransformer', 'LieTransformerBlock']
