import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from torch_lie.nn.models.lie_transformer import MLP


class PointCloudTransformer(torch.nn.Module):
    r"""A standard transformer encoder over the points of each cloud, the
    non-invariant baseline of the constellation task (the analogue of the
    paper's Set Transformer): a linear embedding of :obj:`[x, pos]`,
    :obj:`num_layers` pre-LN encoder layers with full self-attention within
    each cloud (padded points masked out), a final LayerNorm, mean pooling
    and an MLP head.

    Args:
        in_channels (int): Point features.
        hidden_channels (int): Width.
        out_channels (int): Outputs per cloud.
        num_layers (int): Encoder layers.
        heads (int): Attention heads.
        mlp_ratio (float, optional): Width of the layers' MLPs relative to
            :obj:`hidden_channels`. (default: :obj:`1.0`)
        dim (int, optional): Dimension of the positions. (default: :obj:`2`)
    """
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, num_layers: int, heads: int,
                 mlp_ratio: float = 1.0, dim: int = 2):
        super().__init__()
        self.embedding = torch.nn.Linear(in_channels + dim, hidden_channels)
        layer = torch.nn.TransformerEncoderLayer(
            hidden_channels, heads, int(mlp_ratio * hidden_channels),
            dropout=0.0, activation=F.silu, batch_first=True,
            norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(
            layer, num_layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(hidden_channels)
        self.head = MLP(hidden_channels, hidden_channels, out_channels)

    def forward(self, data) -> Tensor:
        r"""Outputs :obj:`[B, out_channels]` of a batch of clouds (a PyG
        :class:`~torch_geometric.data.Batch` with :obj:`pos`, :obj:`x` and
        :obj:`batch`)."""
        h, mask = to_dense_batch(torch.cat([data.x, data.pos], dim=-1),
                                 data.batch)
        h = self.norm(self.encoder(self.embedding(h),
                                   src_key_padding_mask=~mask))
        h = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.head(h)
