r"""Exact, batch-aware radius graphs in pure PyTorch.

The :obj:`"torch"` backend is a cell list ("grid hashing"): space is cut
into cubic cells of side :math:`\approx r / 2`, points are sorted by a
per-graph cell key, and each point is only compared against the points of
the :math:`5^3` surrounding cells, which form 25 contiguous runs of the
sorted points (half of them suffice, as every pair is emitted in both
directions).  At fixed density this is linear in the number of points, in
time and in memory; candidate pairs are processed in bounded chunks.
"""
import itertools
import math
import warnings
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from torch_lie.utils.checks import check_choice

__all__ = ['radius_graph']

_BACKENDS = ('auto', 'torch', 'cluster', 'brute')

# Number of candidate pairs materialised at once; bounds the temporary
# memory (a few tens of bytes per pair) and keeps it cache- and
# allocator-friendly.
_CHUNK_PAIRS = 1 << 20

# Keys must stay clear of int64 overflow, including the neighbour offsets.
_MAX_KEY = 1 << 62

# Above this many cells along one axis, float64 floors are no longer exact
# enough to guarantee that neighbours fall into adjacent cells.
_MAX_CELLS_PER_DIM = 1 << 30

# Only this many coordinates are hashed; the others are checked exactly by
# the distance filter.  Bounds the number of neighbour runs per point.
_MAX_HASHED_DIMS = 3

# Cells of side r / _REACH; neighbours lie up to _REACH cells away.  Finer
# cells hug the ball more tightly (fewer candidate pairs) at the cost of
# more, shorter source ranges.
_REACH = 2

_TRUNCATION_WARNED = False

_cluster_cache: Optional[Tuple[bool, object]] = None


def _torch_cluster():
    r"""Returns the :obj:`torch_cluster` module, or :obj:`None` if it cannot
    be loaded (e.g., a wheel built against another PyTorch version fails with
    an "undefined symbol" :class:`OSError` at import time).
    """
    global _cluster_cache
    if _cluster_cache is None:
        try:
            import torch_cluster

            # Touch the compiled op: a broken extension can import but
            # still lack its kernels.
            torch.ops.torch_cluster.radius  # noqa: B018
            _cluster_cache = (True, torch_cluster)
        except Exception:
            _cluster_cache = (False, None)
    return _cluster_cache[1]


def _margin(dtype: torch.dtype) -> float:
    # Relative slack that absorbs rounding in squared distances of the given
    # dtype (and in the float64 cell coordinates).  Only costs a few extra
    # candidates: the exact distance filter decides membership.
    return max(1e-5, 64 * torch.finfo(dtype).eps)


def _sq_dist(cols: List[Tensor], src: Tensor, tgt: Tensor) -> Tensor:
    # Every backend computes squared distances with exactly this sequence of
    # elementwise operations (no fused multiply-add), so that boundary
    # decisions are bitwise identical across backends.
    out: Optional[Tensor] = None
    for col in cols:
        diff = col.index_select(0, src) - col.index_select(0, tgt)
        diff = diff.mul_(diff)
        out = diff if out is None else out.add_(diff)
    assert out is not None
    return out


def _dense_graph_ids(batch: Tensor) -> Tuple[Tensor, int]:
    # Maps graph ids to a compact range [0, B) without assuming sortedness.
    lo, hi = torch.aminmax(batch)
    lo, hi = int(lo), int(hi)
    if hi - lo < batch.numel():
        return batch - lo, hi - lo + 1
    # Sparse ids (e.g. [0, 10**12]) would blow up the key range; relabel.
    uniq, inv = torch.unique(batch, return_inverse=True)
    return inv, uniq.numel()


def _compress(coord: Tensor, reach: int) -> Tensor:
    # Order-preserving relabelling that keeps gaps of up to `reach` cells and
    # shrinks larger ones to `reach + 1`: neighbourhoods are unchanged, the
    # range becomes O(N).
    uniq, inv = torch.unique(coord, return_inverse=True)
    step = (uniq[1:] - uniq[:-1]).clamp_(max=reach + 1)
    new = torch.cat([step.new_zeros(1), step.cumsum(0)])
    return new[inv]


class _Grid:
    r"""Points sorted by a per-graph cell key, with range look-ups.

    Cells have side :obj:`cell`, and the key of cell
    :math:`(c_0, c_1, c_2)` of graph :math:`g` is
    :math:`((g W_0 + c_0 + s) W_1 + c_1 + s) W_2 + c_2 + s` with
    :math:`W = \textrm{extent} + 2s`, so that offsets of up to :math:`\pm s`
    cells never carry into the next field: the cell :obj:`o` cells away has
    key :obj:`key + dot(o, strides)`, and cells adjacent along the last
    hashed axis have consecutive keys (their points are contiguous once
    sorted).
    """
    def __init__(self, pos: Tensor, cell: float, graph: Optional[Tensor],
                 num_graphs: int, reach: int = 1):
        num_nodes, dim = pos.shape
        device = pos.device
        self.reach = reach

        # Cell coordinates relative to the per-graph minimum, in float64 so
        # that floors are reliable for coordinates far from the origin.
        p = pos.double()
        if graph is None:
            lo = p.amin(dim=0, keepdim=True)
        else:
            lo = p.new_full((num_graphs, dim), math.inf)
            lo.scatter_reduce_(0, graph.view(-1, 1).expand(-1, dim), p,
                               reduce='amin', include_self=True)
            lo = lo.index_select(0, graph)
        coords = torch.floor_((p - lo).div_(cell))
        del p, lo
        # Clamp before the cast (float to int overflow is undefined); such
        # axes exceed _MAX_CELLS_PER_DIM and are not hashed anyway.
        coords = coords.clamp_(max=2.0**62).long()
        ext = (coords.amax(dim=0) + 1).tolist()

        # Choose the hashed dimensions: the most spread-out ones, at most
        # three, and only as many as fit into an int64 key.  Dropping a
        # dimension only adds candidates, it never loses an edge.
        dims = sorted((d for d in range(dim) if ext[d] <= _MAX_CELLS_PER_DIM),
                      key=lambda d: -ext[d])[:_MAX_HASHED_DIMS]
        # At least one axis, so that row look-ups never spill into the next
        # graph (a constant zero column if need be).
        dims = [d for d in dims if ext[d] > 1] or dims[:1]
        if not dims:
            coords = torch.cat([coords, coords.new_zeros(num_nodes, 1)], 1)
            dims, ext = [dim], ext + [1]

        def fits(ds: List[int]) -> bool:
            size = math.prod(ext[d] + 2 * reach for d in ds)
            return num_graphs * size < _MAX_KEY

        if not fits(dims):
            for d in dims:
                coords[:, d] = _compress(coords[:, d], reach)
                ext[d] = int(coords[:, d].max()) + 1
            while len(dims) > 1 and not fits(dims):
                dims.pop()
        dims.sort()

        strides = [0] * len(dims)
        stride = 1
        for i in reversed(range(len(dims))):
            strides[i] = stride
            stride *= ext[dims[i]] + 2 * reach
        if graph is None:
            key = torch.zeros(num_nodes, dtype=torch.long, device=device)
        else:
            key = graph * stride
        for i, d in enumerate(dims):
            key.add_(coords[:, d] + reach, alpha=strides[i])
        del coords

        self.key, self.perm = torch.sort(key, stable=True)
        self.strides = strides
        self.num_nodes = num_nodes
        num_keys = num_graphs * stride
        self.cell_key: Optional[Tensor] = None
        if num_keys <= 4 * num_nodes + 1024:
            # Dense table over all keys: table[k] = #points with key < k.
            count = torch.bincount(self.key, minlength=num_keys + 1)
            self.table = torch.cumsum(count, 0).sub_(count)
        else:
            # Sparse key space: binary search over the occupied cells.
            self.cell_key, count = torch.unique_consecutive(
                self.key, return_counts=True)
            self.table = torch.cat([count.new_zeros(1), count.cumsum(0)])

    def first(self, query: Tensor) -> Tensor:
        r"""Sorted index of the first point whose key is at least
        :obj:`query` (elementwise).
        """
        if self.cell_key is not None:
            query = torch.searchsorted(self.cell_key, query)
        return self.table.index_select(0, query.view(-1)).view(query.shape)

    def rows(self, half: bool) -> List[Tuple[int, int]]:
        r"""Neighbour rows: (key offset of the row, reach along the row).
        With :obj:`half`, only rows with a positive key offset.
        """
        s = self.reach
        out = []
        # `o` ranges over the cell offsets along all hashed axes but the
        # last one (the row axis, stride 1).
        for o in itertools.product(range(-s, s + 1),
                                   repeat=max(len(self.strides) - 1, 0)):
            delta = sum(a * b for a, b in zip(o, self.strides, strict=False))
            if half and delta <= 0:
                continue
            # Cells `o` apart are at least sum((|o| - 1)^+ ^ 2) cells apart;
            # skip rows, and trim row ends, that cannot hold a neighbour.
            gap = sum(max(abs(a) - 1, 0)**2 for a in o)
            if gap >= s * s:
                continue
            t = s
            while t > 1 and (t - 1)**2 + gap >= s * s:
                t -= 1
            out.append((delta, t))
        return out


def _candidates(cols: List[Tensor], r2: float, first: int, start: Tensor,
                count: Tensor, size: int, dtype: torch.dtype,
                need_d2: bool) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    r"""Expands the source ranges :obj:`[start, start + count)` (one row per
    target :obj:`first, first + 1, ...`) into candidate pairs and keeps
    those within the radius.
    """
    device = start.device
    num_targets, num_rows = count.shape
    count = count.view(-1)
    # Ranges are laid out back to back: pair k of range s has source
    # start[s] + k - offset[s].
    seg = torch.repeat_interleave(count.to(dtype), output_size=size)
    shift = start.view(-1) - (count.cumsum(0) - count)
    src = torch.arange(size, dtype=dtype, device=device).add_(
        shift.to(dtype).index_select(0, seg))
    tgt = torch.arange(first, first + num_targets, dtype=dtype,
                       device=device).repeat_interleave(num_rows)
    tgt = tgt.index_select(0, seg)
    del seg
    d2 = _sq_dist(cols, src, tgt)
    idx = (d2 <= r2).nonzero().view(-1)
    return (src.index_select(0, idx), tgt.index_select(0, idx),
            d2.index_select(0, idx) if need_d2 else None)


def _cell_list(pos: Tensor, r: float, r2: float, graph: Optional[Tensor],
               num_graphs: int, loop: bool,
               need_d2: bool) -> Tuple[Tensor, Optional[Tensor]]:
    num_nodes = pos.size(0)
    device = pos.device
    cell = r * (1.0 + _margin(pos.dtype)) / _REACH
    grid = _Grid(pos, cell, graph, num_graphs, _REACH)
    perm = grid.perm
    # int32 halves the memory traffic of the candidate pairs.
    dtype = torch.int32 if num_nodes < 2**30 else torch.long
    # Sorted, contiguous coordinate columns: the candidates of a target lie
    # in a few short runs, so the gathers below are cache friendly.
    cols = [c.contiguous() for c in pos.index_select(0, perm).t()]
    perm_n = perm * num_nodes

    # Each unordered pair is visited once, from the point that comes first
    # in key order, and emitted in both directions.  Row 0 is the point's
    # own row, from the next point on; the others are whole rows "above".
    rows = [(0, grid.reach)] + grid.rows(half=True)
    lo_off = torch.tensor([d - t for d, t in rows], device=device)
    hi_off = torch.tensor([d + t + 1 for d, t in rows], device=device)

    def ranges(a: int, b: int) -> Tuple[Tensor, Tensor]:
        # Source ranges [start, start + count) of points a..b-1, per row.
        key = grid.key[a:b].view(-1, 1)
        start = grid.first(key + lo_off)
        start[:, 0] = torch.arange(a + 1, b + 1, device=device)
        count = grid.first(key + hi_off).sub_(start)
        return start, count

    # Surviving pairs, in sorted order, kept as (small) index pairs until
    # their number is known; the keys are then written in one go.
    pairs: List[Tuple[Tensor, Tensor, Optional[Tensor]]] = []
    limit = torch.tensor([_CHUNK_PAIRS], device=device)
    a, step = 0, max(1, _CHUNK_PAIRS // 64)
    while a < num_nodes:
        # Blocks of points with about _CHUNK_PAIRS candidate pairs: the
        # block size adapts to the density seen so far.
        b = min(a + step, num_nodes)
        start, count = ranges(a, b)
        cum = count.sum(1).cumsum(0)
        size = int(cum[-1])
        if size > _CHUNK_PAIRS and b - a > 1:
            keep = max(1, int(torch.searchsorted(cum, limit, right=True)))
            b = a + keep
            start, count, size = start[:keep], count[:keep], int(cum[keep - 1])
        step = max(1, min(4 * (b - a), _CHUNK_PAIRS * (b - a) // (size + 1)))
        if size > 0:
            pairs.append(_candidates(cols, r2, a, start, count, size, dtype,
                                     need_d2))
        a = b

    # key = target * N + source, for both directions of every pair.
    num_edges = 2 * sum(p[0].numel() for p in pairs)
    num_edges += num_nodes if loop else 0
    key = torch.empty(num_edges, dtype=torch.long, device=device)
    d2_out = pos.new_empty(num_edges) if need_d2 else None
    offset = 0
    for src, tgt, d2 in pairs:
        n = src.numel()
        torch.add(perm_n.index_select(0, tgt), perm.index_select(0, src),
                  out=key[offset:offset + n])
        torch.add(perm_n.index_select(0, src), perm.index_select(0, tgt),
                  out=key[offset + n:offset + 2 * n])
        if d2_out is not None and d2 is not None:
            d2_out[offset:offset + n] = d2
            d2_out[offset + n:offset + 2 * n] = d2
        offset += 2 * n
    if loop:
        torch.mul(torch.arange(num_nodes, device=device), num_nodes + 1,
                  out=key[offset:])
        if d2_out is not None:
            d2_out[offset:] = 0
    return key, d2_out


def _brute(pos: Tensor, r2: float, graph: Optional[Tensor], num_graphs: int,
           loop: bool, need_d2: bool) -> Tuple[Tensor, Optional[Tensor]]:
    num_nodes = pos.size(0)
    device = pos.device
    # Group the nodes by graph so that each block of targets is only
    # compared against the graphs it spans.
    order: Optional[Tensor] = None
    if graph is not None:
        graph, order = torch.sort(graph, stable=True)
        pos = pos.index_select(0, order)
        sizes = torch.bincount(graph, minlength=num_graphs)
        ptr = [0] + sizes.cumsum(0).tolist()
        gid = graph.tolist()
        max_size = int(sizes.max())
    else:
        max_size = num_nodes
    cols = [c.contiguous() for c in pos.t()]
    rows = max(1, min(_CHUNK_PAIRS // (2 * max_size),
                      math.isqrt(_CHUNK_PAIRS // 2)))
    keys: List[Tensor] = []
    d2s: List[Tensor] = []
    lo = 0
    while lo < num_nodes:
        hi = min(lo + rows, num_nodes)
        c0, c1 = 0, num_nodes
        if graph is not None:
            # Stop at the end of the current graph unless that makes the
            # block much smaller (many tiny graphs share one block).
            end = ptr[gid[lo] + 1]
            if end < hi and end - lo >= rows // 2:
                hi = end
            c0, c1 = ptr[gid[lo]], ptr[gid[hi - 1] + 1]
        # Same operation sequence as `_sq_dist`, broadcast over all sources.
        d2: Optional[Tensor] = None
        for col in cols:
            diff = col[c0:c1].view(1, -1) - col[lo:hi].view(-1, 1)
            diff = diff.mul_(diff)
            d2 = diff if d2 is None else d2.add_(diff)
        assert d2 is not None
        mask = d2 <= r2
        if graph is not None:
            mask &= graph[c0:c1].view(1, -1) == graph[lo:hi].view(-1, 1)
        if not loop:
            ar = torch.arange(lo, hi, device=device)
            mask[ar - lo, ar - c0] = False
        tgt, src = mask.nonzero().t()
        if need_d2:
            d2s.append(d2[tgt, src])
        tgt, src = tgt + lo, src + c0
        if order is not None:
            tgt, src = order[tgt], order[src]
        keys.append(tgt * num_nodes + src)
        lo = hi
    return torch.cat(keys), torch.cat(d2s) if need_d2 else None


def _cluster(pos: Tensor, r: float, r2: float, graph: Optional[Tensor],
             num_graphs: int, loop: bool,
             need_d2: bool) -> Tuple[Tensor, Optional[Tensor]]:
    torch_cluster = _torch_cluster()
    assert torch_cluster is not None
    num_nodes = pos.size(0)
    # torch-cluster tests `dist < r` (exclusive); search slightly wider and
    # let the shared exact filter decide.
    r_search = r * (1.0 + _margin(pos.dtype))

    # torch-cluster needs the batch vector sorted.
    perm: Optional[Tensor] = None
    x, b = pos.contiguous(), graph
    if graph is not None:
        if not bool((graph[1:] >= graph[:-1]).all()):
            b, perm = torch.sort(graph, stable=True)
            x = pos.index_select(0, perm)

    # Its CPU kernel only stops at `max_num_neighbors`, so N can never
    # truncate there.  The CUDA kernel allocates N * max_num_neighbors
    # slots, so take a tight bound from the cell list instead.
    if x.is_cuda:
        bound = _max_candidates(x, r_search * (1.0 + _margin(pos.dtype)), b,
                                num_graphs)
    else:
        bound = num_nodes
    kwargs = {}
    if b is None and not x.is_cuda:
        kwargs['num_workers'] = torch.get_num_threads()
    # Returns (target, source), i.e. (y index, x index).
    tgt, src = torch_cluster.radius(x, x, r_search, b, b,
                                    max_num_neighbors=max(bound, 1), **kwargs)
    if perm is not None:
        tgt, src = perm.index_select(0, tgt), perm.index_select(0, src)

    cols = [c.contiguous() for c in pos.t()]
    d2 = _sq_dist(cols, src, tgt)
    mask = d2 <= r2
    if not loop:
        mask &= src != tgt
    idx = mask.nonzero().view(-1)
    key = tgt.index_select(0, idx) * num_nodes + src.index_select(0, idx)
    return key, d2.index_select(0, idx) if need_d2 else None


def _max_candidates(pos: Tensor, cell: float, graph: Optional[Tensor],
                    num_graphs: int) -> int:
    # Largest number of points in the 3^D cells around any point: an upper
    # bound on the number of neighbours within `cell`.
    grid = _Grid(pos, cell, graph, num_graphs)
    total = torch.zeros_like(grid.key)
    for delta, t in grid.rows(half=False):
        total += grid.first(grid.key + delta + t + 1)
        total -= grid.first(grid.key + delta - t)
    return int(total.max())


def _sort_and_truncate(key: Tensor, d2: Optional[Tensor], num_nodes: int,
                       max_num_neighbors: Optional[int],
                       warn: bool = True) -> Tensor:
    global _TRUNCATION_WARNED

    # key = target * N + source; sorting it orders by target, then source.
    # Small graphs fit the key into int32, which sorts about twice as fast.
    if num_nodes * num_nodes < 2**31:
        key = key.int()
    key, order = torch.sort(key)
    out = torch.empty(2, key.numel(), dtype=torch.long, device=key.device)
    src, tgt = out[0], out[1]
    torch.div(key, num_nodes, rounding_mode='floor', out=tgt)
    torch.mul(tgt, num_nodes, out=src)
    torch.sub(key, src, out=src)
    del key

    k = max_num_neighbors
    if k is None or src.numel() == 0:
        return out
    deg = torch.bincount(tgt, minlength=num_nodes)
    over = deg > k
    num_over = int(over.sum())
    if num_over == 0:
        return out

    # Only edges of over-full targets need ranking.  Two stable sorts of a
    # (target, source)-sorted list order it by (target, distance, source),
    # so that ties go to the smaller source index.
    assert d2 is not None
    sel = over.index_select(0, tgt).nonzero().view(-1)
    t = tgt.index_select(0, sel)
    dist = d2.index_select(0, order.index_select(0, sel))
    o1 = torch.sort(dist, stable=True)[1]
    o2 = torch.sort(t.index_select(0, o1), stable=True)[1]
    rank_order = o1.index_select(0, o2)
    # Rank of each edge within its target's run.
    seg_deg = deg[over]
    seg_ptr = seg_deg.cumsum(0) - seg_deg
    seg_id = over.long().cumsum(0).sub_(1).index_select(
        0, t.index_select(0, rank_order))
    rank = torch.arange(t.numel(), device=t.device) - seg_ptr[seg_id]
    keep = torch.ones_like(tgt, dtype=torch.bool)
    keep[sel.index_select(0, rank_order[rank >= k])] = False
    out = out[:, keep]

    if warn and not _TRUNCATION_WARNED:
        _TRUNCATION_WARNED = True
        num_dropped = int(seg_deg.sum()) - num_over * k
        warnings.warn(
            f"'radius_graph' kept only the {k} nearest neighbours "
            f"('max_num_neighbors={k}') of {num_over} target node(s), "
            f"dropping {num_dropped} edge(s) within r. Pass "
            f"'max_num_neighbors=None' to keep all of them (this warning is "
            f"shown once per process)", stacklevel=3)
    return out


def radius_graph(
    pos: Tensor,
    r: float,
    batch: Optional[Tensor] = None,
    loop: bool = False,
    max_num_neighbors: Optional[int] = None,
    backend: str = 'auto',
    warn: bool = True,
) -> Tensor:
    r"""Computes the exact graph connecting all points within distance
    :obj:`r` of each other,
    :math:`\{(j, i) : \| \mathbf{p}_i - \mathbf{p}_j \|_2 \leq r,\;
    \mathbf{b}_i = \mathbf{b}_j\}`.

    Unlike :meth:`torch_cluster.radius_graph`, no neighbours are dropped
    unless :obj:`max_num_neighbors` is given, the boundary is inclusive, and
    the output is deterministic: edges are sorted by target, then by source,
    and are identical for every :obj:`backend`.
    Membership is decided on squared distances
    :math:`\sum_d (p_{i,d} - p_{j,d})^2 \leq r^2`, evaluated in the dtype of
    :obj:`pos`.

    The default pure PyTorch backend is a cell list: linear time and memory
    in the number of nodes at fixed density (:math:`\mathcal{O}(N + E)`),
    no Python loop over nodes or edges, and no :math:`N \times N` matrix.

    .. code-block:: python

        import torch
        from torch_lie.utils import radius_graph

        pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
        edge_index = radius_graph(pos, r=1.0)
        # tensor([[1, 0],
        #         [0, 1]])

    Args:
        pos (torch.Tensor): Node positions
            :math:`\mathbf{P} \in \mathbb{R}^{N \times D}` (floating point,
            any :math:`D \geq 1`, CPU or CUDA).
        r (float): The radius (finite and positive).
        batch (torch.Tensor, optional): Batch vector
            :math:`\mathbf{b} \in \mathbb{Z}^N`, which assigns each node to a
            specific graph.  Does not need to be sorted, and graph ids need
            not be contiguous or non-negative. (default: :obj:`None`)
        loop (bool, optional): If set to :obj:`True`, the graph will contain
            self-loops. (default: :obj:`False`)
        max_num_neighbors (int, optional): If given, keeps for each target
            node only its :obj:`max_num_neighbors` nearest sources (ties are
            broken by the smaller source index; a self-loop counts as a
            neighbour).  Emits a warning, once per process, when this drops
            edges (unless :obj:`warn` is :obj:`False`).  :obj:`None` keeps
            all neighbours. (default: :obj:`None`)
        backend (str, optional): :obj:`"torch"` for the pure PyTorch cell
            list (linear time and memory at fixed density),
            :obj:`"cluster"` for :obj:`torch-cluster`, :obj:`"brute"` for a
            chunked all-pairs search (quadratic, for testing and tiny
            inputs), or :obj:`"auto"`, currently the cell list, which was
            faster than :obj:`torch-cluster` at every size measured.
            All backends return identical results.
        warn (bool, optional): Warn when :obj:`max_num_neighbors` drops
            edges within :obj:`r`. (default: :obj:`True`)
            (default: :obj:`"auto"`)

    Returns:
        The edge indices of shape :obj:`[2, E]` (:obj:`torch.long`, on the
        device of :obj:`pos`), with sources in the first and targets in the
        second row.

    Raises:
        ValueError: If :obj:`r` is not finite and positive, :obj:`pos` is not
            a 2-D tensor or contains NaN or infinite values, :obj:`batch` does
            not hold one entry per node, :obj:`max_num_neighbors` is
            negative, or :obj:`backend` is unknown.
        TypeError: If :obj:`pos` is not floating point or :obj:`batch` is not
            an integer tensor.
        RuntimeError: If :obj:`backend="cluster"` but :obj:`torch-cluster`
            cannot be loaded.

    :rtype: :class:`torch.Tensor`
    """
    check_choice('backend', backend, _BACKENDS)
    if not isinstance(pos, Tensor) or pos.dim() != 2:
        shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos)
        raise ValueError(f"'pos' must be a 2-D tensor of shape [N, D] "
                         f"(got {shape})")
    if not pos.is_floating_point():
        raise TypeError(f"'pos' must be a floating point tensor "
                        f"(got {pos.dtype})")
    if pos.size(1) == 0:
        raise ValueError("'pos' must have at least one coordinate column "
                         "(got shape [N, 0])")
    try:
        r = float(r)
    except (TypeError, ValueError):
        raise ValueError(f"'r' must be a real number (got {r!r})") from None
    if not math.isfinite(r) or r <= 0:
        raise ValueError(f"'r' must be finite and positive (got {r})")
    if max_num_neighbors is not None:
        if isinstance(max_num_neighbors, bool) or max_num_neighbors < 0:
            raise ValueError(f"'max_num_neighbors' must be None or a "
                             f"non-negative int (got {max_num_neighbors!r})")
        max_num_neighbors = int(max_num_neighbors)

    num_nodes = pos.size(0)
    device = pos.device
    if batch is not None:
        if not isinstance(batch, Tensor) or batch.dim() != 1:
            raise ValueError("'batch' must be a 1-D tensor with one graph id "
                             "per node")
        if batch.is_floating_point() or batch.is_complex():
            raise TypeError(f"'batch' must be an integer tensor "
                            f"(got {batch.dtype})")
        if batch.numel() != num_nodes:
            raise ValueError(f"'batch' must hold one entry per node: got "
                             f"{batch.numel()} entries for {num_nodes} "
                             f"nodes")
        batch = batch.to(device=device, dtype=torch.long)

    if num_nodes == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)

    pos = pos.detach()
    if not bool(torch.isfinite(pos).all()):
        raise ValueError("'pos' contains NaN or infinite values")

    graph: Optional[Tensor] = None
    num_graphs = 1
    if batch is not None:
        graph, num_graphs = _dense_graph_ids(batch)
        if num_graphs == 1:
            graph = None

    # The squared radius as seen by the distance filter: rounded to the
    # dtype of `pos`, like the squared distances it is compared against.
    r2 = float(torch.tensor(r * r, dtype=pos.dtype))

    if backend == 'cluster' and _torch_cluster() is None:
        raise RuntimeError("radius_graph(backend='cluster') requires "
                           "'torch-cluster', which is not installed or "
                           "failed to load (e.g. it was built against a "
                           "different PyTorch version)")
    if backend == 'auto':
        # The cell list beats torch-cluster at every size measured on CPU
        # (0.85x its time at 10^3 points, 0.11x at 10^6: its KD-tree is not
        # linear; benchmarks/radius_graph.py), and torch-cluster's CUDA
        # kernel compares all pairs within each graph.
        backend = 'torch'

    need_d2 = max_num_neighbors is not None
    if backend == 'torch':
        key, d2 = _cell_list(pos, r, r2, graph, num_graphs, loop, need_d2)
    elif backend == 'cluster':
        key, d2 = _cluster(pos, r, r2, graph, num_graphs, loop, need_d2)
    else:
        key, d2 = _brute(pos, r2, graph, num_graphs, loop, need_d2)

    return _sort_and_truncate(key, d2, num_nodes, max_num_neighbors, warn)
