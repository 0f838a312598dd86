r"""Message passing layers."""
from torch_lie.nn.conv.lie_self_attention_conv import LieSelfAttentionConv

__all__ = ['LieSelfAttentionConv']
