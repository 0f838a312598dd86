from typing import NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from torch_lie.data import LiftedData
from torch_lie.groups import Group, group_resolver
from torch_lie.utils import radius_graph


class LiftedGraph(NamedTuple):
    r"""The lifted elements of a set of points and their neighbourhoods."""
    g: Tensor  #: Lifted elements :obj:`[M, ...]`.
    q: Tensor  #: Orbit invariants :obj:`[M, q_dim]`.
    point_index: Tensor  #: Point of each element :obj:`[M]`.
    batch: Optional[Tensor]  #: Graph of each element :obj:`[M]`.
    edge_index: Optional[Tensor]  #: Neighbourhoods :obj:`[2, E]` (source, target).
    edge_attr: Optional[Tensor]  #: Pair embeddings :obj:`[E, edge_dim]`.


class Lift(BaseTransform):
    r"""Lifts a point cloud to a set of group elements with neighbourhoods and
    pair embeddings, the input of :class:`~torch_lie.nn.LieTransformer`
    (functional name: :obj:`lift`), from the `"LieTransformer: Equivariant
    Self-Attention for Lie Groups" <https://arxiv.org/abs/2012.10885>`_
    paper.

    Every point :math:`x_i` becomes :math:`K` elements :math:`g` of the group
    with :math:`g o = x_i` (see :meth:`torch_lie.groups.Group.lift`), each
    carrying the point's features. A lifted element :math:`u` of point
    :math:`x_i` attends to all elements :math:`v` of the points :math:`x_j`
    in the neighbourhood of :math:`x_i` (itself included), with the pair
    embedding

    .. math::
        e_{uv} = \left[\log(u^{-1} v),\, q_u,\, q_v\right],

    which is unchanged when all elements are left-multiplied by one group
    element: models built on it are invariant.

    Neighbourhoods are defined on points by the Euclidean distance
    :math:`\|x_i - x_j\|`, which every implemented group (translations,
    rotations, rigid motions) preserves, so neighbourhoods are invariant too.

    The lifted :class:`~torch_lie.data.LiftedData` holds :obj:`x [M, F]`
    (features repeated; a column of ones when the input has no :obj:`x`:
    then use :obj:`attention="dot_product"` or invariant features, since
    softmax attention over equal features returns those features whatever
    the weights, and the model cannot see the geometry),
    :obj:`g` (the elements), :obj:`q [M, q_dim]`, :obj:`point_index [M]`,
    :obj:`edge_index [2, E]` sorted by target, :obj:`edge_attr [E,
    group.edge_dim]`, and the input's :obj:`pos [N, n]` and other attributes
    unchanged (point-level attributes stay point-level; gather them with
    :obj:`point_index`). An input :obj:`edge_index`/:obj:`edge_attr` (e.g.
    chemical bonds) is replaced.

    For random lifts, every call draws fresh samples (Monte Carlo, as in the
    paper); seed :func:`torch.manual_seed` to reproduce them. :meth:`lift`
    is the same operation as a differentiable function of :obj:`pos` (the
    neighbourhood selection aside), for use inside models, e.g. potentials
    whose forces are gradients.

    Args:
        group (Group or str): The group, or its name for
            :func:`~torch_lie.groups.group_resolver` (e.g. :obj:`"SE3"`).
        num_samples (int, optional): Lifted elements per point for random
            lifts (must be :obj:`1` for deterministic ones).
            (default: :obj:`1`)
        r (float, optional): Neighbourhood radius. :obj:`None` means full
            attention within each graph. (default: :obj:`None`)
        max_num_neighbors (int, optional): If set, every point keeps only
            its :obj:`max_num_neighbors` nearest neighbouring points (itself
            included; ties by index), with a warning when that drops any.
            :obj:`None` never truncates. (default: :obj:`None`)
    """
    def __init__(self, group: Union[Group, str], num_samples: int = 1,
                 r: Optional[float] = None,
                 max_num_neighbors: Optional[int] = None):
        self.group = group_resolver(group)
        self.group.lift_size(num_samples)  # validates num_samples
        if r is not None and not (r > 0 and r < float('inf')):
            raise ValueError(f"'r' must be a positive finite radius or None "
                             f"for full attention (got {r})")
        if max_num_neighbors is not None and max_num_neighbors < 1:
            raise ValueError(f"'max_num_neighbors' must be at least 1 or "
                             f"None (got {max_num_neighbors})")
        self.num_samples = num_samples
        self.r = r
        self.max_num_neighbors = max_num_neighbors

    @property
    def lift_size(self) -> int:
        r"""Number of lifted elements per point."""
        return self.group.lift_size(self.num_samples)

    def neighbourhoods(self, pos: Tensor,
                       batch: Optional[Tensor] = None) -> Tensor:
        r"""Point-level neighbourhoods :obj:`[2, E]` (source, target; sorted
        by target, then source), self loops included."""
        if self.r is None and (self.max_num_neighbors is None
                               or pos.size(0) == 0):
            return complete_graph(pos.size(0), batch, pos.device)
        r = self.r
        if r is None:  # every pair lies within the bounding box's diagonal
            r = float((pos.amax(0) - pos.amin(0)).norm()) + 1.0
        return radius_graph(pos, r, batch, loop=True,
                            max_num_neighbors=self.max_num_neighbors)

    def lift(self, pos: Tensor, batch: Optional[Tensor] = None,
             generator: Optional[torch.Generator] = None,
             with_edges: bool = True) -> LiftedGraph:
        r"""Lifts points :obj:`pos [N, n]` (of graphs :obj:`batch [N]`),
        differentiably in :obj:`pos` (without :obj:`edge_index` and
        :obj:`edge_attr` if :obj:`with_edges=False`). Features are not part
        of the result:
        gather them with :obj:`x[lifted.point_index]`; rebuild
        :obj:`edge_attr` from moved elements with
        :meth:`~torch_lie.groups.Group.edge_attr`."""
        n = self.group.space_dim
        if pos.dim() != 2 or pos.size(1) != n:
            raise ValueError(f"{self.group} acts on {n}-dimensional points, "
                             f"so 'pos' must have shape [N, {n}] (got "
                             f"{list(pos.shape)})")
        # A data-dependent check: skipped inside compiled code (callers such
        # as roll-outs validate their initial states once).
        if not torch.compiler.is_compiling() and not torch.isfinite(pos).all():
            raise ValueError("'pos' contains NaN or infinite values")
        if batch is not None and batch.shape != pos.shape[:1]:
            raise ValueError(f"'batch' must have shape [{pos.size(0)}] "
                             f"(got {list(batch.shape)})")
        k = self.lift_size
        g, q = self.group.lift(pos, self.num_samples, generator)
        point_index = torch.arange(pos.size(0), device=pos.device)
        point_index = point_index.repeat_interleave(k)
        lifted_batch = None if batch is None else batch[point_index]
        if not with_edges:
            return LiftedGraph(g, q, point_index, lifted_batch, None, None)
        with torch.no_grad():
            point_edges = self.neighbourhoods(pos.detach(), batch)
        edge_index = expand_edges(point_edges, pos.size(0), k)
        edge_attr = self.group.edge_attr(g, edge_index, q)
        return LiftedGraph(g, q, point_index, lifted_batch, edge_index,
                           edge_attr)

    def lift_dense(self, pos: Tensor,
                   generator: Optional[torch.Generator] = None
                   ) -> Tuple[Tensor, Tensor, Tensor]:
        r"""Lifts a batch of equally sized point clouds :obj:`pos [B, N, n]`
        with full attention, for
        :meth:`~torch_lie.nn.LieTransformer.forward_dense`; differentiable
        in :obj:`pos`.

        :rtype: (:class:`torch.Tensor`, :class:`torch.Tensor`,
            :class:`torch.Tensor`): the elements :obj:`[B, M, ...]`, their
            orbit invariants :obj:`[B, M, q_dim]` and the pair embeddings
            :obj:`[B, M, M, edge_dim]` of all (target, source) pairs, with
            :obj:`M = N * lift_size`.
        """
        if self.r is not None or self.max_num_neighbors is not None:
            raise ValueError("'lift_dense' is full attention: it needs a "
                             "Lift with r=None and max_num_neighbors=None")
        if pos.dim() != 3:
            raise ValueError(f"'pos' must have shape [B, N, n] (got "
                             f"{list(pos.shape)})")
        B, N, n = pos.shape
        lifted = self.lift(pos.reshape(B * N, n), generator=generator,
                           with_edges=False)
        M = N * self.lift_size
        g = lifted.g.view(B, M, *lifted.g.shape[1:])
        q = lifted.q.view(B, M, self.group.q_dim)
        u, v = g[:, :, None], g[:, None, :]
        if self.group.q_dim == 0:
            pair_attr = self.group.pair_embedding(u, v)
        else:
            shape = (B, M, M, self.group.q_dim)
            pair_attr = self.group.pair_embedding(
                u, v, q[:, :, None].expand(shape), q[:, None, :].expand(shape))
        return g, q, pair_attr

    def dense_inputs(self, x: Tensor, pos: Tensor,
                     mask: Optional[Tensor] = None,
                     generator: Optional[torch.Generator] = None
                     ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        r"""The inputs of :meth:`~torch_lie.nn.LieTransformer.forward_dense`
        for padded point clouds :obj:`pos [B, N, n]` with features
        :obj:`x [B, N, F]` and valid points :obj:`mask [B, N]`: the features
        :obj:`[B, M, F]` and mask :obj:`[B, M]` of the lifted elements
        (element :obj:`i * lift_size + s` lifts point :obj:`i`) and the
        pair embeddings of :meth:`lift_dense`, :obj:`M = N * lift_size`."""
        if x.shape[:2] != pos.shape[:2]:
            raise ValueError(f"'x' {list(x.shape)} and 'pos' "
                             f"{list(pos.shape)} must have the same batch "
                             f"and point dimensions")
        _, _, pair_attr = self.lift_dense(pos, generator)
        k = self.lift_size
        if k > 1:
            x = x.repeat_interleave(k, dim=1)
            mask = None if mask is None else mask.repeat_interleave(k, dim=1)
        return x, pair_attr, mask

    def forward(self, data: Data) -> LiftedData:
        if getattr(data, 'pos', None) is None:
            raise ValueError("Lift needs point positions in 'data.pos'")
        lifted = self.lift(data.pos)
        out = LiftedData()
        for key, value in data.items():
            if key not in ('edge_index', 'edge_attr', 'num_nodes'):
                out[key] = value
        x = data.x if data.x is not None else data.pos.new_ones(
            data.pos.size(0), 1)
        out.x = x[lifted.point_index]
        out.g, out.q = lifted.g, lifted.q
        out.point_index = lifted.point_index
        out.edge_index, out.edge_attr = lifted.edge_index, lifted.edge_attr
        out.num_nodes = lifted.point_index.numel()
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.group}, '
                f'num_samples={self.num_samples}, r={self.r}, '
                f'max_num_neighbors={self.max_num_neighbors})')


def complete_graph(num_nodes: int, batch: Optional[Tensor] = None,
                   device: Optional[torch.device] = None) -> Tensor:
    r"""All pairs (self loops included) within each graph, :obj:`[2, E]`
    sorted by target, then source. :obj:`batch` must be sorted."""
    if batch is None:
        batch = torch.zeros(num_nodes, dtype=torch.long, device=device)
    elif num_nodes > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("'batch' must be sorted for full attention")
    counts = torch.bincount(batch)
    ptr = torch.cumsum(counts, 0) - counts  # first node of each graph
    deg = counts[batch]
    dst = torch.arange(num_nodes, device=device).repeat_interleave(deg)
    start = torch.cumsum(deg, 0) - deg
    src = ptr[batch[dst]] + torch.arange(dst.numel(), device=device) - start[dst]
    return torch.stack([src, dst])


def expand_edges(edge_index: Tensor, num_points: int, k: int) -> Tensor:
    r"""Expands point edges :obj:`[2, E]` sorted by target to the edges
    between all :obj:`k` lifted elements of each point pair, :obj:`[2, E k^2]`,
    sorted by target element (element :obj:`i * k + b` lifts point
    :obj:`i`)."""
    if k == 1:
        return edge_index
    src, dst = edge_index
    deg = torch.bincount(dst, minlength=num_points)
    first = torch.cumsum(deg, 0) - deg  # first point edge of each target
    lifted_deg = (deg * k).repeat_interleave(k)
    target = torch.arange(num_points * k, device=src.device)
    target = target.repeat_interleave(lifted_deg)
    offset = torch.arange(target.numel(), device=src.device)
    offset = offset - (torch.cumsum(lifted_deg, 0) - lifted_deg)[target]
    edge = first[target // k] + offset // k
    return torch.stack([src[edge] * k + offset % k, target])
