from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.transforms import BaseTransform

from torch_lie.data import LiftedData
from torch_lie.data.lifted_data import is_lifted
from torch_lie.groups import Group, group_resolver
from torch_lie.utils import check_int, radius_graph

# Point-cloud attributes that a lift replaces or recomputes.
_REPLACED = ('x', 'batch', 'ptr', 'num_nodes', 'edge_index', 'edge_attr',
             'adj_t')


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
    They never cross graphs: the :obj:`batch` vector of a collated
    :class:`~torch_geometric.data.Batch` is respected.

    The result is always a :class:`~torch_lie.data.LiftedData`, whether the
    input is a :class:`~torch_geometric.data.Data`, a
    :class:`~torch_geometric.data.Batch` (call) or tensors (:meth:`lift`).
    It holds :obj:`x [M, F]` (features repeated per element; absent when
    the input has none), :obj:`g` (the elements), :obj:`q [M, q_dim]`,
    :obj:`point_index [M]`, :obj:`batch [M]` (for batches),
    :obj:`edge_index [2, E]` sorted by target, then source,
    :obj:`edge_attr [E, group.edge_dim]`, the input's :obj:`pos [N, n]`,
    :obj:`lift` (this transform's :obj:`repr`) and the input's other
    attributes (point-level ones stay point-level: gather them with
    :obj:`point_index`). Input edges (e.g. chemical bonds) are not
    neighbourhoods: :obj:`edge_index`, :obj:`edge_attr` and every other
    edge-level attribute of the input are dropped.

    For random lifts, every call draws fresh samples (Monte Carlo, as in the
    paper); seed :func:`torch.manual_seed` to reproduce them.

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
            included; ties by index), with a warning when that drops any
            within :obj:`r` (none without :obj:`r`: the nearest are asked).
            :obj:`None` never truncates. (default: :obj:`None`)
        num_neighbor_samples (int, optional): If set, every lifted element
            attends to that many elements drawn at random, without
            replacement, from the elements of its neighbourhood (to all of
            them where there are fewer), afresh on every call: the Monte
            Carlo neighbourhoods of the paper's QM9 model (25 of about 50
            nearest elements). The draw depends only on the neighbourhood,
            which every group element preserves, so the model stays
            invariant in distribution. (default: :obj:`None`)
    """
    def __init__(self, group: Union[Group, str], num_samples: int = 1,
                 r: Optional[float] = None,
                 max_num_neighbors: Optional[int] = None,
                 num_neighbor_samples: Optional[int] = None):
        self.group = group_resolver(group)
        check_int('num_samples', num_samples)
        self.group.lift_size(num_samples)  # deterministic lifts take 1
        if r is not None and not (r > 0 and r < float('inf')):
            raise ValueError(f"'r' must be a positive finite radius or None "
                             f"for full attention (got {r})")
        if max_num_neighbors is not None and max_num_neighbors < 1:
            raise ValueError(f"'max_num_neighbors' must be at least 1 or "
                             f"None (got {max_num_neighbors})")
        if num_neighbor_samples is not None:
            check_int('num_neighbor_samples', num_neighbor_samples)
        self.num_samples = num_samples
        self.r = r
        self.max_num_neighbors = max_num_neighbors
        self.num_neighbor_samples = num_neighbor_samples

    @property
    def lift_size(self) -> int:
        r"""Number of lifted elements per point."""
        return self.group.lift_size(self.num_samples)

    @property
    def full_attention(self) -> bool:
        r"""Whether neighbourhoods are whole graphs."""
        return (self.r is None and self.max_num_neighbors is None
                and self.num_neighbor_samples is None)

    def neighbourhoods(self, pos: Tensor,
                       batch: Optional[Tensor] = None) -> Tensor:
        r"""Point-level neighbourhoods :obj:`[2, E]` (source, target; sorted
        by target, then source), self loops included."""
        if self.full_attention or pos.size(0) == 0:
            return complete_graph(pos.size(0), batch, pos.device)
        if self.r is not None:
            return radius_graph(pos, self.r, batch, loop=True,
                                max_num_neighbors=self.max_num_neighbors)
        # The nearest points, as asked: no warning that others are dropped.
        # Every pair lies within the bounding box's diagonal.
        r = float((pos.amax(0) - pos.amin(0)).norm()) + 1.0
        return radius_graph(pos, r, batch, loop=True,
                            max_num_neighbors=self.max_num_neighbors,
                            warn=False)

    def lift(self, pos: Tensor, x: Optional[Tensor] = None,
             batch: Optional[Tensor] = None,
             num_graphs: Optional[int] = None,
             generator: Optional[torch.Generator] = None) -> LiftedData:
        r"""Lifts points given as tensors, differentiably in :obj:`pos` and
        :obj:`x` (the neighbourhood selection aside): the entry point inside
        models whose outputs are differentiated with respect to the
        positions (forces, Hamiltonians).

        Args:
            pos (torch.Tensor): Points :obj:`[N, n]`, or :obj:`[B, N, n]`
                for :obj:`B` point clouds of :obj:`N` points each (e.g.
                particle systems; this layout lifts with full attention
                without any data-dependent shape, so it compiles).
            x (torch.Tensor, optional): Features :obj:`[N, F]` (or
                :obj:`[B, N, F]`). (default: :obj:`None`)
            batch (torch.Tensor, optional): Graph of each point :obj:`[N]`,
                sorted. (default: :obj:`None`, a single graph)
            num_graphs (int, optional): Number of graphs of :obj:`batch`
                (counted when not given). (default: :obj:`None`)
            generator (torch.Generator, optional): Random generator of the
                samples. (default: :obj:`None`)
        """
        graph_size = None
        if pos.dim() == 3:
            if batch is not None:
                raise ValueError("'pos' of shape [B, N, n] holds B graphs of "
                                 "N points: it takes no 'batch' vector")
            num_graphs, graph_size = pos.size(0), pos.size(1)
            if x is not None and x.shape[:2] != pos.shape[:2]:
                raise ValueError(f"'x' {list(x.shape)} and 'pos' "
                                 f"{list(pos.shape)} must have the same "
                                 f"graph and point dimensions")
            pos = pos.reshape(-1, pos.size(-1))
            x = None if x is None else x.reshape(pos.size(0), -1)
            batch = torch.arange(num_graphs, device=pos.device)
            batch = batch.repeat_interleave(graph_size)
        self._check_points(pos, x, batch)
        k = self.lift_size
        g, q = self.group.lift(pos, self.num_samples, generator)
        point_index = torch.arange(pos.size(0), device=pos.device)
        point_index = point_index.repeat_interleave(k)
        if batch is not None and num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        with torch.no_grad():
            if graph_size is not None and self.full_attention:
                edge_index = complete_graphs(num_graphs, graph_size * k,
                                             pos.device)
            else:
                edges = self.neighbourhoods(pos.detach(), batch)
                edge_index = expand_edges(edges, pos.size(0), k)
                if self.num_neighbor_samples is not None:
                    edge_index = sample_edges(edge_index,
                                              self.num_neighbor_samples,
                                              pos.size(0) * k, generator)
        edge_attr = self.group.edge_attr(g, edge_index, q)
        if k > 1:  # element i * k + s lifts point i
            batch = None if batch is None else batch.repeat_interleave(k)
            x = None if x is None else x.repeat_interleave(k, dim=0)
        # Filled through its storage: Data's property setters would split a
        # compiled graph (e.g. a compiled Hamiltonian vector field).
        out = LiftedData()
        items = dict(pos=pos, g=g, q=q, point_index=point_index, x=x,
                     batch=batch, edge_index=edge_index, edge_attr=edge_attr,
                     lift=repr(self), num_nodes=point_index.numel())
        for key, value in items.items():
            out._store[key] = value
        if num_graphs is not None:
            out._num_graphs = num_graphs
        return out

    def _check_points(self, pos: Tensor, x: Optional[Tensor],
                      batch: Optional[Tensor]) -> None:
        n = self.group.space_dim
        if not pos.is_floating_point():
            raise ValueError(f"'pos' must be a floating-point tensor (got "
                             f"{pos.dtype}): e.g. pos.float()")
        if pos.dim() != 2 or pos.size(1) != n:
            raise ValueError(f"{self.group} acts on {n}-dimensional points, "
                             f"so 'pos' must have shape [N, {n}] (got "
                             f"{list(pos.shape)})")
        if x is not None and (x.dim() != 2 or x.size(0) != pos.size(0)):
            raise ValueError(f"'x' must hold one row of features per point, "
                             f"[{pos.size(0)}, F] (got {list(x.shape)})")
        if batch is not None and batch.shape != pos.shape[:1]:
            raise ValueError(f"'batch' must have shape [{pos.size(0)}] "
                             f"(got {list(batch.shape)})")
        # Under torch.compile this check breaks the graph; callers that
        # validate their inputs once turn it off (see `trusted_positions`).
        if _CHECK_FINITE and not bool(torch.isfinite(pos).all()):
            raise ValueError("'pos' contains NaN or infinite values")

    def forward(self, data: Data) -> LiftedData:
        if is_lifted(data):
            raise ValueError(f"The data are already lifted (by "
                             f"{data.get('lift', 'a Lift')}): lift point "
                             f"clouds once, either in the dataset's "
                             f"transform or in the model")
        if getattr(data, 'pos', None) is None:
            raise ValueError("Lift needs point positions in 'data.pos'")
        num_graphs = data.num_graphs if isinstance(data, Batch) else None
        out = self.lift(data.pos, data.x, data.batch, num_graphs)
        edge_level = ({key for key in data.keys() if data.is_edge_attr(key)}
                      if 'edge_index' in data else set())
        for key, value in data.items():
            if key not in _REPLACED and key not in edge_level:
                out[key] = value
        return out

    def __repr__(self) -> str:
        sampled = ('' if self.num_neighbor_samples is None else
                   f', num_neighbor_samples={self.num_neighbor_samples}')
        return (f'{self.__class__.__name__}({self.group}, '
                f'num_samples={self.num_samples}, r={self.r}, '
                f'max_num_neighbors={self.max_num_neighbors}{sampled})')


_CHECK_FINITE = True


@contextmanager
def trusted_positions() -> Iterator[None]:
    r"""A context in which :meth:`Lift.lift` does not check that positions
    are finite, for callers that validated them already and run compiled
    (the check reads the values on the host, which would split a compiled
    graph)."""
    global _CHECK_FINITE
    previous, _CHECK_FINITE = _CHECK_FINITE, False
    try:
        yield
    finally:
        _CHECK_FINITE = previous


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


def complete_graphs(num_graphs: int, graph_size: int,
                    device: Optional[torch.device] = None) -> Tensor:
    r"""All pairs (self loops included) within each of :obj:`num_graphs`
    consecutive graphs of :obj:`graph_size` nodes, :obj:`[2, E]` sorted by
    target, then source; its shape depends on the sizes only."""
    num_nodes = num_graphs * graph_size
    dst = torch.arange(num_nodes, device=device)
    dst = dst.repeat_interleave(graph_size)
    src = torch.arange(graph_size, device=device).repeat(num_nodes)
    return torch.stack([dst - dst % graph_size + src, dst])


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


def sample_edges(edge_index: Tensor, num: int, num_nodes: int,
                 generator: Optional[torch.Generator] = None) -> Tensor:
    r"""Keeps :obj:`num` incoming edges of every target node (all of them
    where it has fewer), drawn uniformly without replacement, of edges
    :obj:`[2, E]` sorted by target, then source; the result is sorted the
    same way."""
    src, dst = edge_index
    key = torch.rand(dst.numel(), generator=generator, device=dst.device)
    order = key.argsort()  # random; then grouped by target, still random
    order = order[dst[order].argsort(stable=True)]
    deg = torch.bincount(dst, minlength=num_nodes)
    first = torch.cumsum(deg, 0) - deg
    rank = torch.arange(dst.numel(), device=dst.device) - first[dst[order]]
    return edge_index[:, order[rank < num].sort().values]
