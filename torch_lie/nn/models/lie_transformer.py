from typing import Callable, Optional, Union

import torch
from torch import Tensor
from torch.nn import LayerNorm, SiLU
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.utils import scatter

from torch_lie.groups import Group, group_resolver
from torch_lie.nn.conv import LieSelfAttentionConv

POOLS = ('mean', 'sum', 'max')


class MLP(torch.nn.Sequential):
    r"""Two linear layers with a Swish in between."""
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, dropout: float = 0.0):
        super().__init__(Linear(in_channels, hidden_channels), SiLU(),
                         torch.nn.Dropout(dropout),
                         Linear(hidden_channels, out_channels))

    def reset_parameters(self):
        for module in self:
            if hasattr(module, 'reset_parameters'):
                module.reset_parameters()


class LieTransformerBlock(torch.nn.Module):
    r"""A pre-LayerNorm residual block: :math:`\mathbf{x} \leftarrow
    \mathbf{x} + \mathrm{Attn}(\mathrm{LN}(\mathbf{x}))`, then
    :math:`\mathbf{x} \leftarrow \mathbf{x} +
    \mathrm{MLP}(\mathrm{LN}(\mathbf{x}))`."""
    def __init__(self, channels: int, edge_dim: int, heads: int,
                 kernel_dim: int, attention: str, combine: str,
                 dropout: float, mlp_ratio: float):
        super().__init__()
        self.norm_attn = LayerNorm(channels)
        self.attn = LieSelfAttentionConv(channels, channels, edge_dim, heads,
                                         kernel_dim, attention, combine,
                                         dropout)
        self.norm_mlp = LayerNorm(channels)
        self.mlp = MLP(channels, int(mlp_ratio * channels), channels, dropout)

    def reset_parameters(self):
        for module in (self.norm_attn, self.attn, self.norm_mlp, self.mlp):
            module.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_attr: Tensor) -> Tensor:
        return self._residual(
            x, lambda h: self.attn(h, edge_index, edge_attr))

    def forward_dense(self, x: Tensor, pair_attr: Tensor,
                      mask: Optional[Tensor] = None) -> Tensor:
        r"""The block on dense batches, see
        :meth:`LieSelfAttentionConv.forward_dense`."""
        return self._residual(
            x, lambda h: self.attn.forward_dense(h, pair_attr, mask))

    def _residual(self, x: Tensor, attend: Callable[[Tensor], Tensor]):
        x = x + attend(self.norm_attn(x))
        return x + self.mlp(self.norm_mlp(x))


class LieTransformer(torch.nn.Module):
    r"""The LieTransformer from the `"LieTransformer: Equivariant
    Self-Attention for Lie Groups" <https://arxiv.org/abs/2012.10885>`_
    paper: an invariant network on lifted group elements.

    A linear embedding, :obj:`num_layers` pre-LayerNorm residual blocks of
    :class:`~torch_lie.nn.LieSelfAttentionConv` and a pointwise MLP, a final
    LayerNorm (optional), invariant pooling over all lifted elements of each
    graph, and an output MLP. Switching groups changes only :obj:`group`
    (and the :class:`~torch_lie.transforms.Lift` that makes the input).

    .. code-block:: python

        from torch_geometric.loader import DataLoader
        from torch_lie.nn import LieTransformer
        from torch_lie.transforms import Lift

        dataset = MyPointClouds(transform=Lift('SE3', num_samples=4, r=5.0))
        model = LieTransformer(dataset.num_features, 128, 1, group='SE3')
        for data in DataLoader(dataset, batch_size=32):
            out = model(data.x, data.edge_index, data.edge_attr, data.batch)

    Args:
        in_channels (int): Size of each input feature vector.
        hidden_channels (int): Width of the blocks.
        out_channels (int): Size of each output (per graph).
        group (Group or str): The group of the lift, for its pair embedding
            width (a name is resolved by
            :func:`~torch_lie.groups.group_resolver`).
        num_layers (int, optional): Number of blocks. (default: :obj:`6`)
        heads (int, optional): Attention heads. (default: :obj:`8`)
        kernel_dim (int, optional): Hidden size of the location MLPs.
            (default: :obj:`16`)
        attention (str, optional): :obj:`"softmax"` or
            :obj:`"dot_product"`. (default: :obj:`"softmax"`)
        combine (str, optional): :obj:`"sum"`, :obj:`"mlp"` or
            :obj:`"multiply"`. (default: :obj:`"sum"`)
        pool (str, optional): Invariant pooling over the lifted elements,
            :obj:`"mean"`, :obj:`"sum"` or :obj:`"max"`. :obj:`"sum"` grows
            with the number of elements per point, so keep
            :obj:`num_samples` of the lift fixed between training and
            inference. (default: :obj:`"mean"`)
        dropout (float, optional): Dropout probability. (default: :obj:`0.0`)
        mlp_ratio (float, optional): Hidden width of the pointwise MLPs
            relative to :obj:`hidden_channels`. (default: :obj:`1.0`)
        final_norm (bool, optional): If set to :obj:`False`, the blocks'
            output is pooled without the final LayerNorm, so the output's
            scale can follow the inputs' (as in the reference): for
            regressing physical quantities such as potential energies,
            whose size the normalised features would otherwise have to
            rebuild in the output MLP's weights. (default: :obj:`True`)

    Shapes:
        - **input:**
          features :math:`(M, F_{in})`, edges :math:`(2, E)`, pair
          embeddings :math:`(E, D)`, batch vector :math:`(M)` *(optional)*
        - **output:** :math:`(B, F_{out})`
    """
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, group: Union[Group, str],
                 num_layers: int = 6, heads: int = 8, kernel_dim: int = 16,
                 attention: str = 'softmax', combine: str = 'sum',
                 pool: str = 'mean', dropout: float = 0.0,
                 mlp_ratio: float = 1.0, final_norm: bool = True):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"'pool' must be one of {POOLS} (got '{pool}')")
        self.group = group_resolver(group)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.pool = pool

        self.embedding = Linear(in_channels, hidden_channels)
        self.blocks = torch.nn.ModuleList([
            LieTransformerBlock(hidden_channels, self.group.edge_dim, heads,
                                kernel_dim, attention, combine, dropout,
                                mlp_ratio) for _ in range(num_layers)
        ])
        self.norm = LayerNorm(hidden_channels) if final_norm else None
        self.head = MLP(hidden_channels, hidden_channels, out_channels)

    def reset_parameters(self):
        self.embedding.reset_parameters()
        for block in self.blocks:
            block.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()
        self.head.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor,
                batch: Optional[Tensor] = None,
                num_graphs: Optional[int] = None) -> Tensor:
        r"""Runs the forward pass of the module.

        Args:
            x (torch.Tensor): Features of the lifted elements.
            edge_index (torch.Tensor): Neighbourhoods, source to target.
            edge_attr (torch.Tensor): Pair embeddings.
            batch (torch.Tensor, optional): Graph of each lifted element.
                (default: :obj:`None`, a single graph)
            num_graphs (int, optional): Number of graphs; pass it to avoid a
                device synchronisation (and a graph break under
                :func:`torch.compile`). (default: :obj:`None`)
        """
        x = self.embedding(x)
        for block in self.blocks:
            x = block(x, edge_index, edge_attr)
        if self.norm is not None:
            x = self.norm(x)
        if batch is None:
            batch, num_graphs = x.new_zeros(x.size(0), dtype=torch.long), 1
        x = scatter(x, batch, dim=0, dim_size=num_graphs, reduce=self.pool)
        return self.head(x)

    def forward_dense(self, x: Tensor, pair_attr: Tensor,
                      mask: Optional[Tensor] = None) -> Tensor:
        r"""The model on a dense batch of complete graphs (full attention),
        with batched matrix products instead of gathers and scatters: the
        fast path for small graphs, e.g. from
        :meth:`torch_lie.transforms.Lift.lift_dense`. Same parameters and
        outputs as :meth:`forward` on the same complete graphs.

        Args:
            x (torch.Tensor): Features :obj:`[B, M, F_in]`.
            pair_attr (torch.Tensor): Pair embeddings :obj:`[B, M, M, D]`
                (target, source).
            mask (torch.Tensor, optional): Valid elements :obj:`[B, M]` of
                padded graphs. (default: :obj:`None`)
        """
        x = self.embedding(x)
        for block in self.blocks:
            x = block.forward_dense(x, pair_attr, mask)
        if self.norm is not None:
            x = self.norm(x)
        if mask is None:
            x = {'mean': x.mean, 'sum': x.sum, 'max': x.amax}[self.pool](1)
        elif self.pool == 'max':
            x = x.masked_fill(~mask[..., None], float('-inf')).amax(1)
        else:
            x = (x * mask[..., None]).sum(1)
            if self.pool == 'mean':
                x = x / mask.sum(1, keepdim=True).clamp(min=1)
        return self.head(x)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.hidden_channels}, {self.out_channels}, '
                f'group={self.group}, num_layers={self.num_layers})')
