import math
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric import EdgeIndex
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.utils import softmax

from torch_lie.nn.conv.lean_attention import LeanAttention, in_degree
from torch_lie.utils import check_choice, check_float, check_int

ATTENTIONS = ('softmax', 'dot_product', 'norm_exp')
COMBINES = ('sum', 'mlp', 'multiply', 'embedding')


class LieSelfAttentionConv(MessagePassing):
    r"""The equivariant self-attention layer from the `"LieTransformer:
    Equivariant Self-Attention for Lie Groups"
    <https://arxiv.org/abs/2012.10885>`_ paper, on lifted group elements
    (see :class:`torch_lie.transforms.Lift`).

    For every target element :math:`u` and head :math:`h`, the content and
    location logits of a neighbour :math:`v \in \mathcal{N}(u)` are

    .. math::
        a^C_{uv,h} = \frac{\langle \mathbf{W}^Q_h \mathbf{x}_u,
        \mathbf{W}^K_h \mathbf{x}_v \rangle}{\sqrt{d}}, \qquad
        a^L_{uv,h} = \mathrm{MLP}_h(\mathbf{e}_{uv}),

    with the invariant pair embedding :math:`\mathbf{e}_{uv}` as
    :obj:`edge_attr` and per-head location MLPs :math:`\mathrm{edge\_dim}
    \to \mathrm{kernel\_dim} \to \mathrm{kernel\_dim} \to 1` (Swish). They
    are combined into :math:`a_{uv,h} = a^C + a^L` (:obj:`"sum"`), :math:`a^C
    a^L` (:obj:`"multiply"`) or :math:`\mathrm{MLP}_h([a^C,
    \mathbf{e}_{uv}])` (:obj:`"mlp"`), or :math:`\mathrm{MLP}_h([\mathbf{c}_{uv,h},
    \mathbf{e}_{uv}])` with a content embedding :math:`\mathbf{c}_{uv,h} =
    \mathbf{W}^C [\mathbf{W}^Q_h \mathbf{x}_u, \mathbf{W}^K_h \mathbf{x}_v]`
    instead of :math:`a^C` (:obj:`"embedding"`, the paper's QM9 kernel),
    normalised over :math:`\mathcal{N}(u)`
    by a softmax (:obj:`"softmax"`), by :math:`1 / |\mathcal{N}(u)|`
    (:obj:`"dot_product"`) or as :math:`\exp(a_{uv,h}) / |\mathcal{N}(u)|`
    (:obj:`"norm_exp"`), and

    .. math::
        \mathbf{x}'_u = \mathbf{W}^O \, \Big\Vert_{h=1}^{H}
        \sum_{v \in \mathcal{N}(u)} \alpha_{uv,h} \mathbf{W}^V_h
        \mathbf{x}_v.

    Every input of the weights is invariant, so the layer is equivariant.

    On an edge list the layer runs a lean kernel: edges in chunks, only the
    normalised weights :obj:`[E, heads]` kept for backward (which recomputes
    each chunk's logits), and a segment softmax over :obj:`ptr` when
    :obj:`edge_index` is an :class:`~torch_geometric.EdgeIndex` sorted by
    target (as :class:`~torch_lie.nn.LieTransformer` passes a lift's edges).
    Dropout in training, explanations, :func:`torch.compile` and
    :mod:`torch.func` transforms run PyG's message passing instead, as does
    :obj:`conv.lean = False`; both compute the same values and derivatives
    of every order.

    Args:
        in_channels (int): Size of each input sample.
        out_channels (int): Size of each output sample; divisible by
            :obj:`heads` (each head has :obj:`out_channels // heads`
            channels).
        edge_dim (int): Size of the pair embedding (the group's
            :obj:`edge_dim`).
        heads (int, optional): Number of attention heads. (default: :obj:`1`)
        kernel_dim (int, optional): Hidden size of the location MLPs.
            (default: :obj:`16`)
        attention (str, optional): Normalisation, :obj:`"softmax"`,
            :obj:`"dot_product"` or :obj:`"norm_exp"`.
            (default: :obj:`"softmax"`)
        combine (str, optional): Combination of content and location,
            :obj:`"sum"`, :obj:`"mlp"` or :obj:`"multiply"`.
            (default: :obj:`"sum"`)
        dropout (float, optional): Dropout probability of the normalised
            attention weights. (default: :obj:`0.0`)
        bias (bool, optional): If set to :obj:`False`, the linear maps learn
            no bias. (default: :obj:`True`)
        content_dim (int, optional): Size :math:`e` of the per-head content
            embedding of :obj:`combine="embedding"` (then
            :math:`\mathbf{W}^Q, \mathbf{W}^K` map to :obj:`heads * e`).
            (default: :obj:`None`)
        kernel_act_out (bool, optional): If set to :obj:`True`, a Swish
            follows the location MLP's last layer too (the paper's kernel,
            whose location logits are :math:`\mathrm{Swish}(\cdot)`).
            (default: :obj:`False`)
        kernel_init (str, optional): Initialisation of the location MLPs,
            :obj:`"he"` (uniform with variance :math:`2 / \mathrm{fan\_in}`,
            zero biases) or :obj:`"paper"` (the original implementation's:
            weights and biases uniform in :math:`[-0.25, 0.25]`, the last
            layer's in :math:`[-1, 1]`). (default: :obj:`"he"`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F_{in})`,
          edge indices :math:`(2, |\mathcal{E}|)`,
          pair embeddings :math:`(|\mathcal{E}|, D)`
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})` or
          :math:`((|\mathcal{V}|, F_{out}), ((2, |\mathcal{E}|),
          (|\mathcal{E}|, H)))` if :obj:`return_attention_weights=True`
    """
    def __init__(self, in_channels: int, out_channels: int, edge_dim: int,
                 heads: int = 1, kernel_dim: int = 16,
                 attention: str = 'softmax', combine: str = 'sum',
                 dropout: float = 0.0, bias: bool = True,
                 content_dim: Optional[int] = None,
                 kernel_act_out: bool = False, kernel_init: str = 'he',
                 **kwargs):
        kwargs.setdefault('aggr', 'add')
        super().__init__(node_dim=0, **kwargs)
        for name, value in (('in_channels', in_channels),
                            ('out_channels', out_channels),
                            ('edge_dim', edge_dim), ('heads', heads),
                            ('kernel_dim', kernel_dim)):
            check_int(name, value)
        check_float('dropout', dropout, 0.0, 1.0, high_open=True)
        if out_channels % heads != 0:
            raise ValueError(f"'out_channels' ({out_channels}) must be "
                             f"divisible by 'heads' ({heads})")
        check_choice('attention', attention, ATTENTIONS)
        check_choice('combine', combine, COMBINES)
        check_choice('kernel_init', kernel_init, ('he', 'paper'))
        if (combine == 'embedding') != (content_dim is not None):
            raise ValueError("'content_dim' goes with combine='embedding' "
                             "(and is needed there)")
        if content_dim is not None:
            check_int('content_dim', content_dim)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.edge_dim = edge_dim
        self.heads = heads
        self.head_dim = out_channels // heads
        self.kernel_dim = kernel_dim
        self.attention = attention
        self.combine = combine
        self.dropout = dropout
        self.content_dim = content_dim
        self.kernel_act_out = kernel_act_out
        self.kernel_init = kernel_init
        self.lean = True

        qk_channels = out_channels if content_dim is None else heads * content_dim
        self.lin_query = Linear(in_channels, qk_channels, bias=bias)
        self.lin_key = Linear(in_channels, qk_channels, bias=bias)
        self.lin_value = Linear(in_channels, out_channels, bias=bias)
        self.lin_out = Linear(out_channels, out_channels, bias=bias)

        # The per-head location MLPs as grouped weights: the first layer is
        # one matmul shared by all heads, the others are batched over heads.
        self.kernel_in = Linear(edge_dim, heads * kernel_dim)
        # The first layer's weights of the content input: a scalar per head
        # ('mlp'), or the content embedding ('embedding', whose shared map
        # W^C is lin_content).
        self.kernel_content = self.lin_content = None
        if combine == 'mlp':
            self.kernel_content = Parameter(torch.empty(heads, kernel_dim))
        if combine == 'embedding':
            self.lin_content = Linear(2 * content_dim, content_dim)
            self.kernel_content = Parameter(torch.empty(heads, content_dim,
                                                        kernel_dim))
        self.kernel_hidden = Parameter(torch.empty(heads, kernel_dim,
                                                   kernel_dim))
        self.kernel_hidden_bias = Parameter(torch.empty(heads, 1, kernel_dim))
        self.kernel_out = Parameter(torch.empty(heads, kernel_dim, 1))
        self.kernel_out_bias = Parameter(torch.empty(heads, 1, 1))

        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for lin in (self.lin_query, self.lin_key, self.lin_value,
                    self.lin_out, self.lin_content):
            if lin is not None:
                lin.reset_parameters()
        layers = [(self.kernel_in.weight, self.kernel_in.bias, self.edge_dim),
                  (self.kernel_hidden, self.kernel_hidden_bias,
                   self.kernel_dim),
                  (self.kernel_out, self.kernel_out_bias, self.kernel_dim)]
        if self.kernel_content is not None:
            layers.append((self.kernel_content, None,
                           self.edge_dim + (self.content_dim or 1)))
        for i, (weight, bias, fan_in) in enumerate(layers):
            if self.kernel_init == 'paper':
                bound = 1.0 if i == 2 else 0.25
                for tensor in (weight, bias):
                    if tensor is not None:
                        torch.nn.init.uniform_(tensor, -bound, bound)
            else:
                # He: with PyTorch's default (variance 1 / (3 fan_in)) each
                # Swish layer shrinks the signal, and the location logits
                # start nearly constant in the pair embedding.
                bound = math.sqrt(6 / fan_in)
                torch.nn.init.uniform_(weight, -bound, bound)
                if bias is not None:
                    torch.nn.init.zeros_(bias)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        return_attention_weights: bool = False,
        graph_size: Optional[int] = None,
    ) -> Union[Tensor, Tuple[Tensor, Tuple[Tensor, Tensor]]]:
        r"""Runs the forward pass of the module.

        Args:
            x (torch.Tensor): Features of the lifted elements.
            edge_index (torch.Tensor or torch_geometric.EdgeIndex):
                Neighbourhoods, source to target.
            edge_attr (torch.Tensor): Pair embeddings.
            return_attention_weights (bool, optional): If set to
                :obj:`True`, also returns the edges and their normalised
                attention weights :obj:`[E, heads]`. (default: :obj:`False`)
            graph_size (int, optional): A promise that the edges are the
                complete graphs (self loops included, sorted by target, then
                source) of consecutive groups of :obj:`graph_size` elements,
                as :class:`~torch_lie.transforms.Lift` makes them for full
                attention over equally sized graphs. The same attention is
                then computed with batched matrix products instead of
                gathers and scatters (:class:`~torch_lie.nn.LieTransformer`
                chooses its kernel itself). (default: :obj:`None`)
        """
        if not isinstance(x, Tensor):  # e.g. PyG's bipartite (x_src, x_dst)
            raise TypeError(f"'x' must be one tensor of the features of all "
                            f"lifted elements: self-attention over one set, "
                            f"not bipartite (got {type(x).__name__})")
        if x.dtype != edge_attr.dtype:
            raise ValueError(f"'x' is {x.dtype} but 'edge_attr' is "
                             f"{edge_attr.dtype}: give both the module's "
                             f"dtype")
        if edge_attr.dim() != 2 or edge_attr.size(1) != self.edge_dim:
            raise ValueError(f"'edge_attr' must have shape [E, edge_dim="
                             f"{self.edge_dim}] (the group's pair embedding;"
                             f" got {list(edge_attr.shape)})")
        if edge_attr.size(0) != edge_index.size(1):
            raise ValueError(f"'edge_attr' has {edge_attr.size(0)} rows but "
                             f"'edge_index' has {edge_index.size(1)} edges")
        if graph_size is not None:
            M = graph_size
            if x.size(0) % M != 0 or edge_attr.size(0) != x.size(0) * M:
                raise ValueError(f"'graph_size={M}' does not fit {x.size(0)} "
                                 f"elements and {edge_attr.size(0)} edges")
            B = x.size(0) // M
            out, alpha = self._dense_attention(
                x.view(B, M, -1), edge_attr.view(B, M, M, -1))
            out = out.view(B * M, -1)
            alpha = alpha.permute(0, 2, 3, 1).reshape(-1, self.heads)
        else:
            H, C = self.heads, self.head_dim
            if self.combine == 'embedding':  # per-element terms, [N, H, K]
                query, key = self._content_terms(x)
            else:
                query = self.lin_query(x).view(-1, H, C)
                key = self.lin_key(x).view(-1, H, C)
            value = self.lin_value(x).view(-1, H, C)
            out, alpha = self._sparse_attention(edge_index, query, key,
                                                value, edge_attr)
            out = self.lin_out(out.view(-1, H * C))

        if return_attention_weights:
            return out, (edge_index, alpha)
        return out

    def _dense_attention(self, x: Tensor, pair_attr: Tensor,
                         mask: Optional[Tensor] = None
                         ) -> Tuple[Tensor, Tensor]:
        r"""The attention on complete graphs padded to :obj:`M` elements:
        features :obj:`[B, M, F]`, pair embeddings :obj:`[B, M, M, D]`
        (target, source) and valid elements :obj:`mask [B, M]`; returns the
        output :obj:`[B, M, F_out]` and the weights :obj:`[B, H, M, M]`."""
        (B, M, _), H, C = x.shape, self.heads, self.head_dim
        value = self.lin_value(x).view(B, M, H, C).transpose(1, 2)
        pair_attr = pair_attr.reshape(-1, self.edge_dim)
        if self.combine == 'embedding':
            u, v = self._content_terms(x.reshape(B * M, -1))
            u = u.view(B, M, H, -1).permute(2, 0, 1, 3)[:, :, :, None]
            v = v.view(B, M, H, -1).permute(2, 0, 1, 3)[:, :, None]
            hidden = (u + v).reshape(H, B * M * M, -1)
            alpha = self.location_kernel(pair_attr, hidden)
        else:
            query = self.lin_query(x).view(B, M, H, C).transpose(1, 2)
            key = self.lin_key(x).view(B, M, H, C).transpose(1, 2)
            content = (query @ key.transpose(-1, -2)) / math.sqrt(C)
            if self.combine == 'mlp':
                content = content.transpose(0, 1).reshape(H, -1)
                alpha = self.location_kernel(pair_attr,
                                             self._scalar_content(content))
            else:
                alpha = self.location_kernel(pair_attr)
        alpha = alpha.view(H, B, M, M).transpose(0, 1)  # [B, H, M, M]
        if self.combine == 'sum':
            alpha = content + alpha
        elif self.combine == 'multiply':
            alpha = content * alpha
        sources = None if mask is None else mask[:, None, None, :]
        if self.attention == 'softmax':
            if sources is not None:  # finite: all-padding rows stay finite
                alpha = alpha.masked_fill(~sources, torch.finfo(x.dtype).min)
            alpha = alpha.softmax(dim=-1)
        else:
            if self.attention == 'norm_exp':
                alpha = alpha.exp()
            if sources is None:
                alpha = alpha / M
            else:
                count = sources.sum(-1, keepdim=True).clamp(min=1)
                alpha = alpha.masked_fill(~sources, 0.0) / count
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        out = (alpha @ value).transpose(1, 2).reshape(B, M, H * C)
        return self.lin_out(out), alpha

    def _scalar_content(self, content: Tensor) -> Tensor:
        # combine='mlp': the content logits' term [H, E, K] in the first
        # location layer.
        return content.unsqueeze(-1) * self.kernel_content[:, None]

    def _content_terms(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        # combine='embedding': W^C [a, b] + bias is linear, and so is the
        # first location layer, so its content term is a sum of a target
        # and a source term computed per element, [N, H, K] each.
        H, e = self.heads, self.content_dim
        W = self.lin_content.weight
        a = self.lin_query(x).view(-1, H, e) @ W[:, :e].t()
        b = self.lin_key(x).view(-1, H, e) @ W[:, e:].t()
        bias = self.lin_content.bias @ self.kernel_content  # [H, K]
        u = torch.einsum('nhf,hfk->nhk', a, self.kernel_content) + bias
        return u, torch.einsum('nhf,hfk->nhk', b, self.kernel_content)

    def location_kernel(self, edge_attr: Tensor,
                        hidden: Optional[Tensor] = None) -> Tensor:
        r"""Per-head location MLPs of the pair embeddings :obj:`[E, D]`
        (with a content term :obj:`[H, E, kernel_dim]` added to the first
        layer for :obj:`combine="mlp"` and :obj:`"embedding"`), returning
        logits :obj:`[H, E]`, heads first."""
        # Heads first, [H, E, K], and contiguous throughout: per-pair tensors
        # in transposed layouts made the Swish backward and the copies cost
        # twice as much.
        H, K = self.heads, self.kernel_dim
        weight = self.kernel_in.weight.view(H, K, -1).transpose(1, 2)
        h = torch.baddbmm(self.kernel_in.bias.view(H, 1, K),
                          edge_attr.expand(H, -1, -1), weight)
        if hidden is not None:
            h = h + hidden
        h = F.silu(h)
        h = F.silu(torch.baddbmm(self.kernel_hidden_bias, h,
                                 self.kernel_hidden))
        h = torch.baddbmm(self.kernel_out_bias, h, self.kernel_out)
        if self.kernel_act_out:
            h = F.silu(h)
        return h.squeeze(-1)

    def _sparse_attention(self, edge_index: Tensor, query: Tensor,
                          key: Tensor, value: Tensor,
                          edge_attr: Tensor) -> Tuple[Tensor, Tensor]:
        # The lean kernel keeps only the weights per edge; PyG's
        # message passing (which keeps every per-edge tensor for backward)
        # runs where the lean one cannot: dropout, explanations, compiled
        # graphs (whose edge loops would be unrolled) and torch.func
        # transforms (the Hamiltonian's gradient).
        ptr = None
        if isinstance(edge_index, EdgeIndex):
            if edge_index.is_sorted_by_col:
                (ptr, _), _ = edge_index.get_csc()
            # A plain tensor: PyG's message passing is slower on EdgeIndex.
            edge_index = edge_index.as_tensor()

        def plain(query: Tensor, key: Tensor, value: Tensor,
                  edge_attr: Tensor) -> Tuple[Tensor, Tensor]:
            alpha = self.edge_updater(edge_index, query=query, key=key,
                                      edge_attr=edge_attr)
            alpha = F.dropout(alpha, p=self.dropout, training=self.training)
            return self.propagate(edge_index, value=value, alpha=alpha), alpha

        if (not self.lean or (self.training and self.dropout > 0)
                or self.explain or torch.compiler.is_compiling()
                or torch._C._are_functorch_transforms_active()):
            return plain(query, key, value, edge_attr)
        return LeanAttention.apply(self, plain, edge_index, ptr, query, key,
                                   value, edge_attr,
                                   *self._kernel_parameters())

    def _kernel_parameters(self) -> List[Tensor]:
        # The parameters of the per-edge logits (combine='embedding' uses
        # its kernel_content per element, outside them).
        params = [self.kernel_in.weight, self.kernel_in.bias,
                  self.kernel_hidden, self.kernel_hidden_bias,
                  self.kernel_out, self.kernel_out_bias]
        if self.combine == 'mlp':
            params.append(self.kernel_content)
        return params

    def _logits(self, query_i: Tensor, key_j: Tensor,
                edge_attr: Tensor) -> Tensor:
        # The unnormalised weights [E, H] of gathered queries and keys (or
        # the per-element content terms of combine='embedding').
        if self.combine == 'embedding':
            hidden = (query_i + key_j).transpose(0, 1)
            return self.location_kernel(edge_attr, hidden).t()
        content = (query_i * key_j).sum(dim=-1) / math.sqrt(self.head_dim)
        if self.combine == 'mlp':
            return self.location_kernel(
                edge_attr, self._scalar_content(content.t())).t()
        location = self.location_kernel(edge_attr).t()
        if self.combine == 'sum':
            return content + location
        return content * location

    def _normalise(self, logits: Tensor, index: Tensor, ptr: Optional[Tensor],
                   num_nodes: int) -> Tensor:
        if self.attention == 'softmax':
            return softmax(logits, index, ptr, num_nodes)
        if self.attention == 'norm_exp':
            logits = logits.exp()
        deg = in_degree(index, ptr, num_nodes, logits.dtype)
        return logits / deg.clamp(min=1)[index].unsqueeze(-1)

    def edge_update(self, query_i: Tensor, key_j: Tensor, edge_attr: Tensor,
                    index: Tensor, ptr: Optional[Tensor],
                    dim_size: Optional[int]) -> Tensor:
        return self._normalise(self._logits(query_i, key_j, edge_attr),
                               index, ptr, dim_size)

    def message(self, value_j: Tensor, alpha: Tensor) -> Tensor:
        return value_j * alpha.unsqueeze(-1)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, edge_dim={self.edge_dim}, '
                f'heads={self.heads})')
