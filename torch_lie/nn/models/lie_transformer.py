from typing import Callable, Optional, Tuple

import torch
from torch import Tensor
from torch.nn import LayerNorm, SiLU
from torch_geometric import EdgeIndex
from torch_geometric.data import Data
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.utils import scatter, to_dense_batch

from torch_lie.data import LiftedData
from torch_lie.groups import Group
from torch_lie.nn.conv import LieSelfAttentionConv
from torch_lie.transforms import Lift
from torch_lie.utils import check_choice, check_float, check_int

POOLS = ('mean', 'sum', 'max')
KERNELS = ('auto', 'sparse', 'dense')
#: The most pairs 'auto' runs densely: below, the dense kernel's batched
#: products beat the sparse kernel (QM9 batches of 6-22 thousand pairs,
#: 1.07-1.23x); above, the sparse kernel's chunks stay in cache where the
#: dense tensors do not (3 x 10^5 pairs: sparse 1.4-2.0x faster in 1.4-4.3x
#: less memory; benchmarks/results/models.md).
DENSE_MAX_PAIRS = 1 << 16


class _Layers(torch.nn.Sequential):
    def reset_parameters(self):
        for module in self:
            if hasattr(module, 'reset_parameters'):
                module.reset_parameters()


class MLP(_Layers):
    r"""Two linear layers with a Swish in between (and after them if
    :obj:`act_out`)."""
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, dropout: float = 0.0,
                 act_out: bool = False):
        layers = [Linear(in_channels, hidden_channels), SiLU(),
                  torch.nn.Dropout(dropout),
                  Linear(hidden_channels, out_channels)]
        super().__init__(*layers, *([SiLU()] if act_out else []))


class SwishMLP(_Layers):
    r"""The paper's output head: Swish, Linear, Swish, Linear, Swish,
    Linear (a Swish first, on the pooled features)."""
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int):
        super().__init__(SiLU(), Linear(in_channels, hidden_channels), SiLU(),
                         Linear(hidden_channels, hidden_channels), SiLU(),
                         Linear(hidden_channels, out_channels))


class Pointwise(_Layers):
    r"""The paper's per-element head (:obj:`"pointwise"`): Swish and a
    Linear on every element, pooled afterwards."""
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int):
        super().__init__(SiLU(), Linear(in_channels, out_channels))


HEADS = {'mlp': MLP, 'swish_mlp': SwishMLP, 'pointwise': Pointwise}

#: The original implementation's models (full size), by task: its springs
#: configuration (the paper's Figure 3 model), its constellation
#: configuration, its default QM9 configuration (width 512) and its QM9
#: paper script, whose neighbourhoods are 25 elements drawn at random from
#: the 50 nearest: here from the 52 elements of the 13 nearest atoms, one
#: draw per forward pass (the original draws per layer, by a distance in the
#: group).
PAPER_MODELS = {
    'springs': dict(in_channels=2, hidden_channels=160, out_channels=1,
                    group='T2', num_layers=5, attention='dot_product'),
    'constellation': dict(in_channels=33, hidden_channels=512,
                          out_channels=12, group='T2', num_layers=6,
                          attention='softmax'),
    'qm9': dict(in_channels=15, hidden_channels=512, out_channels=1,
                group='SE3', num_layers=6, attention='softmax'),
    'qm9_paper': dict(in_channels=15, hidden_channels=1504, out_channels=1,
                      group='SE3-quaternion', num_samples=4, num_layers=6,
                      max_num_neighbors=13, num_neighbor_samples=25,
                      attention='dot_product', kernel_dim=6,
                      combine='embedding', content_dim=8, head='pointwise'),
}
#: What every model of the original has (and torch_lie's defaults not).
PAPER_LAYOUT = dict(heads=8, kernel_dim=16, final_norm=False,
                    kernel_act_out=True, mlp_act_out=True, head='swish_mlp',
                    kernel_init='paper')


def paper_config(task: str) -> dict:
    r"""The keyword arguments of :class:`LieTransformer` that build the
    original implementation's model for :obj:`task` (:obj:`"springs"`,
    :obj:`"constellation"`, :obj:`"qm9"` or :obj:`"qm9_paper"`), its lift
    included."""
    if task not in PAPER_MODELS:
        raise ValueError(f"No paper model for '{task}' (expected one of "
                         f"{tuple(PAPER_MODELS)})")
    config = {**PAPER_LAYOUT, **PAPER_MODELS[task]}
    config['lift'] = Lift(config.pop('group'), config.pop('num_samples', 1),
                          max_num_neighbors=config.pop('max_num_neighbors',
                                                       None),
                          num_neighbor_samples=config.pop(
                              'num_neighbor_samples', None))
    return config


class LieTransformerBlock(torch.nn.Module):
    r"""A pre-LayerNorm residual block: :math:`\mathbf{x} \leftarrow
    \mathbf{x} + \mathrm{Attn}(\mathrm{LN}(\mathbf{x}))`, then
    :math:`\mathbf{x} \leftarrow \mathbf{x} +
    \mathrm{MLP}(\mathrm{LN}(\mathbf{x}))`."""
    def __init__(self, channels: int, edge_dim: int, heads: int,
                 kernel_dim: int, attention: str, combine: str,
                 dropout: float, mlp_ratio: float,
                 kernel_act_out: bool = False, mlp_act_out: bool = False,
                 content_dim: Optional[int] = None, kernel_init: str = 'he'):
        super().__init__()
        self.norm_attn = LayerNorm(channels)
        self.attn = LieSelfAttentionConv(channels, channels, edge_dim, heads,
                                         kernel_dim, attention, combine,
                                         dropout, content_dim=content_dim,
                                         kernel_act_out=kernel_act_out,
                                         kernel_init=kernel_init)
        self.norm_mlp = LayerNorm(channels)
        self.mlp = MLP(channels, int(mlp_ratio * channels), channels, dropout,
                       act_out=mlp_act_out)

    def reset_parameters(self):
        for module in (self.norm_attn, self.attn, self.norm_mlp, self.mlp):
            module.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_attr: Tensor) -> Tensor:
        return self._residual(
            x, lambda h: self.attn(h, edge_index, edge_attr))

    def _dense_forward(self, x: Tensor, pair_attr: Tensor,
                       mask: Optional[Tensor]) -> Tensor:
        # The model's dense kernel: padded [B, M, F] features.
        return self._residual(
            x, lambda h: self.attn._dense_attention(h, pair_attr, mask)[0])

    def _residual(self, x: Tensor,
                  attend: Callable[[Tensor], Tensor]) -> Tensor:
        x = x + attend(self.norm_attn(x))
        return x + self.mlp(self.norm_mlp(x))


class LieTransformer(torch.nn.Module):
    r"""The LieTransformer from the `"LieTransformer: Equivariant
    Self-Attention for Lie Groups" <https://arxiv.org/abs/2012.10885>`_
    paper: an invariant network on point clouds lifted to a Lie group.

    The model owns its :class:`~torch_lie.transforms.Lift` (the group, the
    samples per point, the neighbourhoods): a linear embedding of the lifted
    elements' features, :obj:`num_layers` pre-LayerNorm residual blocks of
    :class:`~torch_lie.nn.LieSelfAttentionConv` and a pointwise MLP, a final
    LayerNorm (optional), invariant pooling over all lifted elements of each
    graph, and an output MLP. Switching groups changes only the lift.

    .. code-block:: python

        from torch_geometric.loader import DataLoader
        from torch_lie.nn import LieTransformer
        from torch_lie.transforms import Lift

        model = LieTransformer(4, 128, 1, lift=Lift('SE3', num_samples=4))
        for data in DataLoader(dataset, batch_size=32):
            out = model(data)  # [32, 1]

    :meth:`forward` takes point clouds (a
    :class:`~torch_geometric.data.Data` or
    :class:`~torch_geometric.data.Batch` with :obj:`pos` and optional
    :obj:`x`), lifted inside and differentiably in :obj:`pos`, so forces
    and Hamiltonians are :func:`torch.autograd.grad` of the output; or data
    that a dataset transform already lifted with an equal lift (e.g.
    :obj:`transform=model.lift`), which it checks.

    Where the lifted graphs are complete (full attention), the attention
    can run as batched matrix products over graphs padded to the largest
    one, otherwise it runs on the sparse edges: the same maths, chosen by
    :obj:`kernel`.

    The lift is part of the saved state: loading weights into a model with
    another lift raises a :class:`ValueError` naming both.

    Args:
        in_channels (int): Size of each input feature vector (:obj:`1` for
            inputs without features, which are then a constant).
        hidden_channels (int): Width of the blocks.
        out_channels (int): Size of each output (per graph).
        lift (Lift): The lift of the points to the group.
        num_layers (int, optional): Number of blocks. (default: :obj:`6`)
        heads (int, optional): Attention heads. (default: :obj:`8`)
        kernel_dim (int, optional): Hidden size of the location MLPs.
            (default: :obj:`16`)
        attention (str, optional): :obj:`"softmax"`, :obj:`"dot_product"`
            or :obj:`"norm_exp"`. Softmax attention over equal features
            returns those features whatever the geometry, so inputs without
            features need another one (the model refuses them otherwise).
            (default: :obj:`"softmax"`)
        combine (str, optional): :obj:`"sum"`, :obj:`"mlp"`,
            :obj:`"multiply"` or :obj:`"embedding"` (see
            :class:`~torch_lie.nn.LieSelfAttentionConv`).
            (default: :obj:`"sum"`)
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
        kernel_act_out (bool, optional): A Swish after the location MLPs'
            last layer (see :class:`~torch_lie.nn.LieSelfAttentionConv`), as
            in the paper's models. (default: :obj:`False`)
        mlp_act_out (bool, optional): A Swish after the blocks' pointwise
            MLPs (Linear, Swish, Linear, Swish), as in the paper's models.
            (default: :obj:`False`)
        head (str, optional): The output MLP after pooling: :obj:`"mlp"`
            (Linear, Swish, Linear) or :obj:`"swish_mlp"` (Swish, Linear,
            Swish, Linear, Swish, Linear: the paper's); or
            :obj:`"pointwise"`, Swish and a Linear on every element before
            pooling (the paper's QM9 head). (default: :obj:`"mlp"`)
        content_dim (int, optional): The per-head content embedding size
            of :obj:`combine="embedding"` (see
            :class:`~torch_lie.nn.LieSelfAttentionConv`).
            (default: :obj:`None`)
        kernel_init (str, optional): Initialisation of the location MLPs,
            :obj:`"he"` or the original implementation's :obj:`"paper"` (see
            :class:`~torch_lie.nn.LieSelfAttentionConv`). (default:
            :obj:`"he"`)
        kernel (str, optional): :obj:`"auto"` (batched products for complete
            graphs whose padding to the largest at most doubles the pairs
            and makes at most :obj:`2^16` of them, e.g. small batches of
            molecules or particle systems; sparse edges otherwise),
            :obj:`"sparse"` or :obj:`"dense"` (an error where the graphs are
            not complete), for tests and benchmarks. With graphs of
            different sizes, choosing reads their largest size (one host
            synchronisation). (default: :obj:`"auto"`)

    Shapes:
        - **input:** a point cloud or lifted data of :math:`B` graphs
        - **output:** :math:`(B, F_{out})`
    """
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, lift: Lift, num_layers: int = 6,
                 heads: int = 8, kernel_dim: int = 16,
                 attention: str = 'softmax', combine: str = 'sum',
                 pool: str = 'mean', dropout: float = 0.0,
                 mlp_ratio: float = 1.0, final_norm: bool = True,
                 kernel_act_out: bool = False, mlp_act_out: bool = False,
                 head: str = 'mlp', content_dim: Optional[int] = None,
                 kernel_init: str = 'he', kernel: str = 'auto'):
        super().__init__()
        if not isinstance(lift, Lift):
            raise ValueError(f"'lift' must be a Lift, e.g. Lift('SE3', "
                             f"num_samples=4) (got {lift!r})")
        check_choice('pool', pool, POOLS)
        check_choice('head', head, HEADS)
        check_choice('kernel', kernel, KERNELS)
        for name, value in (('in_channels', in_channels),
                            ('hidden_channels', hidden_channels),
                            ('out_channels', out_channels),
                            ('num_layers', num_layers), ('heads', heads),
                            ('kernel_dim', kernel_dim)):
            check_int(name, value)
        check_float('dropout', dropout, 0.0, 1.0, high_open=True)
        check_float('mlp_ratio', mlp_ratio, 0.0, low_open=True)
        if hidden_channels % heads != 0:
            raise ValueError(f"'hidden_channels' ({hidden_channels}) must be "
                             f"divisible by 'heads' ({heads})")
        self.lift = lift
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.attention = attention
        self.pool = pool
        self.kernel = kernel

        self.embedding = Linear(in_channels, hidden_channels)
        self.blocks = torch.nn.ModuleList([
            LieTransformerBlock(hidden_channels, lift.group.edge_dim, heads,
                                kernel_dim, attention, combine, dropout,
                                mlp_ratio, kernel_act_out, mlp_act_out,
                                content_dim, kernel_init)
            for _ in range(num_layers)
        ])
        self.norm = LayerNorm(hidden_channels) if final_norm else None
        self.head = HEADS[head](hidden_channels, hidden_channels,
                                out_channels)

    @classmethod
    def paper(cls, task: str, **kwargs) -> 'LieTransformer':
        r"""The original implementation's model for :obj:`task`
        (:obj:`"springs"`, :obj:`"constellation"`, :obj:`"qm9"` or
        :obj:`"qm9_paper"`, see :func:`~torch_lie.nn.models.paper_config`),
        with :obj:`kwargs` overriding its arguments, e.g.
        :obj:`LieTransformer.paper("springs", hidden_channels=32)`."""
        return cls(**{**paper_config(task), **kwargs})

    @property
    def group(self) -> Group:
        r"""The group of the lift."""
        return self.lift.group

    def reset_parameters(self):
        self.embedding.reset_parameters()
        for block in self.blocks:
            block.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()
        self.head.reset_parameters()

    def forward(self, data: Data) -> Tensor:
        r"""Runs the forward pass of the module.

        Args:
            data (torch_geometric.data.Data): Point clouds (:obj:`pos`,
                optional :obj:`x`, and :obj:`batch` for a batch), or their
                :class:`~torch_lie.data.LiftedData` from this model's lift.
        """
        if not isinstance(data, Data):
            raise TypeError(f"{type(self).__name__} takes point clouds as a "
                            f"Data or Batch, e.g. model(Data(pos=pos, x=x)) "
                            f"(got {type(data).__name__})")
        if isinstance(data, LiftedData):
            self._check_lifted(data)
        else:
            data = self.lift(data)
        dtype = self.embedding.weight.dtype
        for key in ('x', 'edge_attr'):
            value = getattr(data, key, None)
            if value is not None and value.dtype != dtype:
                what = 'pos' if key == 'edge_attr' else key  # made from pos
                raise ValueError(f"'{what}' is {value.dtype} but the model "
                                 f"is {dtype}: convert one of them (e.g. "
                                 f"model.to({value.dtype}))")
        x = data.x
        if x is None:
            if self.attention == 'softmax':
                raise ValueError(
                    "The points have no features 'x', and softmax attention "
                    "over equal features returns them whatever the "
                    "geometry: every output would be the same. Give the "
                    "points features, or use attention='dot_product'")
            x = data.g.new_ones(data.point_index.size(0), 1)
        if x.size(-1) != self.in_channels:
            raise ValueError(f"The lifted elements have {x.size(-1)} "
                             f"features but the model expects in_channels="
                             f"{self.in_channels}")
        x = self.embedding(x)
        layout = self._dense_layout(data)
        if layout is None:
            # The lift's edges are sorted by target: the layers take their
            # segments (CSR) instead of scattering, without sorting again.
            N = x.size(0)
            edge_index = EdgeIndex(data.edge_index, sparse_size=(N, N),
                                   sort_order='col')
            for block in self.blocks:
                x = block(x, edge_index, data.edge_attr)
            batch = data.batch
            if batch is None:
                batch = x.new_zeros(x.size(0), dtype=torch.long)
            return self._readout(x, lambda h: scatter(
                h, batch, dim=0, dim_size=data.num_graphs, reduce=self.pool))
        x, pair_attr, mask = self._to_dense(x, data, *layout)
        for block in self.blocks:
            x = block._dense_forward(x, pair_attr, mask)
        return self._readout(x, lambda h: self._dense_pool(h, mask))

    def _readout(self, x: Tensor, pool: Callable[[Tensor], Tensor]) -> Tensor:
        # The final norm, then the head after pooling (or before it, for the
        # per-element head).
        if self.norm is not None:
            x = self.norm(x)
        if isinstance(self.head, Pointwise):
            return pool(self.head(x))
        return self.head(pool(x))

    def _dense_pool(self, x: Tensor, mask: Optional[Tensor]) -> Tensor:
        if mask is None:
            return {'mean': x.mean, 'sum': x.sum, 'max': x.amax}[self.pool](1)
        valid = mask[..., None]
        if self.pool == 'max':  # 0 for empty graphs, as the sparse scatter
            x = x.masked_fill(~valid, float('-inf')).amax(1)
            return torch.where(valid.any(1), x, 0.0)
        x = x.masked_fill(~valid, 0.0).sum(1)
        if self.pool == 'mean':
            x = x / valid.sum(1).clamp(min=1)
        return x

    def _dense_layout(self, data: LiftedData
                      ) -> Optional[Tuple[int, int, Optional[Tensor]]]:
        r"""The dense kernel's layout (graphs, padded size, elements per
        graph or :obj:`None` if all are equal), or :obj:`None` for the
        sparse kernel."""
        if self.kernel == 'sparse' or not self.lift.full_attention:
            if self.kernel == 'dense':
                raise ValueError("kernel='dense' needs complete graphs (a "
                                 "Lift with full attention)")
            return None
        B, N = data.num_graphs, data.point_index.size(0)
        E = data.edge_index.size(1)
        if N == 0 or B == 0:
            return None
        # The graphs are complete: sum(m_b^2) = E, and only equal sizes
        # give E * B = N^2 (Cauchy-Schwarz), without reading any value.
        if E * B == N * N:
            if self.kernel == 'dense' or E <= DENSE_MAX_PAIRS:
                return B, N // B, None
            return None
        counts = torch.bincount(data.batch, minlength=B)
        M = int(counts.max())
        # Padding costs B M^2 pairs for E real ones.
        pairs = B * M * M
        if self.kernel == 'dense' or (pairs <= 2 * E
                                      and pairs <= DENSE_MAX_PAIRS):
            return B, M, counts
        return None

    def _to_dense(self, x: Tensor, data: LiftedData, B: int, M: int,
                  counts: Optional[Tensor]
                  ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        edge_attr = data.edge_attr
        if counts is None:
            return (x.view(B, M, -1), edge_attr.view(B, M, M, -1), None)
        x, mask = to_dense_batch(x, data.batch, batch_size=B,
                                 max_num_nodes=M)
        src, dst = data.edge_index
        graph = data.batch[dst]
        first = (torch.cumsum(counts, 0) - counts)[graph]
        pair_attr = edge_attr.new_zeros(B, M, M, edge_attr.size(-1))
        pair_attr = pair_attr.index_put((graph, dst - first, src - first),
                                        edge_attr)
        return x, pair_attr, mask

    def _check_lifted(self, data: LiftedData) -> None:
        # Python strings split a compiled graph: compiled calls (e.g. a
        # Hamiltonian vector field lifting with this model's own lift) trust
        # the data, eager calls check it.
        if torch.compiler.is_compiling():
            return
        lifts = data.get('lift')
        lifts = set(lifts) if isinstance(lifts, (list, tuple)) else {lifts}
        if lifts != {repr(self.lift)}:
            found = ', '.join(sorted(map(str, lifts)))
            raise ValueError(f"The data were lifted by {found}, but the model "
                             f"lifts with {self.lift}: lift with the model's "
                             f"own lift (e.g. transform=model.lift)")

    def get_extra_state(self) -> dict:
        return {'lift': repr(self.lift)}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + '_extra_state' not in state_dict:
            raise ValueError(
                f"The weights do not record their lift (saved before "
                f"torch_lie did): if they were trained with {self.lift}, "
                f"set state_dict['{prefix}_extra_state'] = "
                f"{{'lift': {repr(self.lift)!r}}} and load again")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_extra_state(self, state: dict) -> None:
        if state.get('lift') != repr(self.lift):
            raise ValueError(f"The weights were trained with "
                             f"{state.get('lift')}, but this model lifts "
                             f"with {self.lift}: build it with that lift")

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.hidden_channels}, {self.out_channels}, '
                f'lift={self.lift}, num_layers={self.num_layers})')
