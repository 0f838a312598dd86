import importlib
import math
import sys
import warnings

import pytest
import torch

from torch_lie.utils import radius_graph

radius_module = importlib.import_module('torch_lie.utils.radius')

devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
has_cluster = radius_module._torch_cluster() is not None
requires_cluster = pytest.mark.skipif(not has_cluster,
                                      reason='torch-cluster unavailable')


def uniform(num_nodes, dim, neighbours=20.0, dtype=torch.float32,
            device='cpu', seed=0):
    # Uniform points in a box sized for ~`neighbours` neighbours at r = 1.
    gen = torch.Generator().manual_seed(seed)
    ball = math.pi**(dim / 2) / math.gamma(dim / 2 + 1)
    side = (num_nodes * ball / neighbours)**(1 / dim)
    pos = torch.rand(num_nodes, dim, generator=gen, dtype=dtype) * side
    return pos.to(device)


def reference(pos, r, batch=None, loop=False):
    # Independent float64 all-pairs reference (for inputs without ties at
    # the boundary).
    pos = pos.double().cpu()
    dist = torch.cdist(pos, pos)
    mask = dist <= r
    if batch is not None:
        batch = batch.cpu()
        mask &= batch.view(-1, 1) == batch.view(1, -1)
    if not loop:
        mask.fill_diagonal_(False)
    tgt, src = mask.nonzero().t()  # Row-major: sorted by target, source.
    return torch.stack([src, tgt], dim=0)


def assert_sorted_by_target_then_source(edge_index, num_nodes):
    key = edge_index[1] * num_nodes + edge_index[0]
    assert bool((key[1:] > key[:-1]).all())


@pytest.fixture
def reset_warning(monkeypatch):
    monkeypatch.setattr(radius_module, '_TRUNCATION_WARNED', False)


@pytest.mark.parametrize('device', devices)
def test_torch_matches_brute_3d_batched(device):
    # Five overlapping graphs: nodes of different graphs must not connect.
    pos = torch.cat([uniform(2_000, 3, 25.0, seed=i) for i in range(5)])
    pos = pos.to(device)
    batch = torch.arange(5, device=device).repeat_interleave(2_000)
    expected = radius_graph(pos, 1.0, batch, loop=True, backend='brute')
    assert expected.size(1) > 10 * 10_000
    assert_sorted_by_target_then_source(expected, 10_000)
    assert bool((batch[expected[0]] == batch[expected[1]]).all())
    is_loop = expected[0] == expected[1]
    assert int(is_loop.sum()) == 10_000

    out = radius_graph(pos, 1.0, batch, loop=True, backend='torch')
    assert out.dtype == torch.long and out.device == pos.device
    assert torch.equal(out, expected)
    out = radius_graph(pos, 1.0, batch, loop=False, backend='torch')
    assert torch.equal(out, expected[:, ~is_loop])


@pytest.mark.parametrize('device', devices)
def test_torch_matches_brute_2d(device):
    # Two interleaved (unsorted) graphs sharing one box.
    pos = uniform(10_000, 2, neighbours=40.0, seed=1, device=device)
    batch = torch.arange(10_000, device=device) % 2
    out = radius_graph(pos, 1.0, batch, backend='torch')
    assert out.size(1) > 10 * 10_000
    assert torch.equal(out, radius_graph(pos, 1.0, batch, backend='brute'))


@pytest.mark.parametrize('device', devices)
@pytest.mark.parametrize('dim', [1, 2, 3, 4])
def test_matches_float64_reference(device, dim):
    pos = uniform(1_000, dim, neighbours=15.0, dtype=torch.float64, seed=dim,
                  device=device)
    batch = torch.randint(0, 3, (1_000, ), device=device)
    expected = reference(pos, 1.0, batch).to(device)
    for backend in ['torch', 'brute']:
        out = radius_graph(pos, 1.0, batch, backend=backend)
        assert torch.equal(out, expected), backend


@pytest.mark.parametrize('device', devices)
def test_unsorted_batch(device):
    pos = uniform(4_000, 3, seed=2, device=device)
    batch = torch.randint(-3, 4, (4_000, ), device=device) * 1000  # Gaps.
    out = radius_graph(pos, 1.0, batch, backend='torch')
    assert torch.equal(out, radius_graph(pos, 1.0, batch, backend='brute'))
    assert bool((batch[out[0]] == batch[out[1]]).all())

    # Same graph as for the nodes sorted by graph, relabelled back.
    perm = torch.sort(batch, stable=True)[1]
    sorted_out = radius_graph(pos[perm], 1.0, batch[perm], backend='torch')
    relabelled = perm[sorted_out]
    key = relabelled[1] * 4_000 + relabelled[0]
    assert torch.equal(relabelled[:, key.argsort()], out)


@pytest.mark.parametrize('device', devices)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('backend', ['torch', 'brute', 'auto'])
def test_inclusive_boundary(device, dtype, backend):
    # Integer lattice: axis neighbours are exactly r = 1 apart (included),
    # diagonals sqrt(2) (excluded).
    grid = torch.arange(4, dtype=dtype)
    pos = torch.cartesian_prod(grid, grid, grid).to(device)
    out = radius_graph(pos, 1.0, backend=backend)
    diff = (pos[out[0]] - pos[out[1]]).abs().sum(dim=-1)
    assert bool((diff == 1).all())
    assert out.size(1) == 2 * 3 * (3 * 4 * 4)  # 2 * axes * lattice edges.

    # Both points sit exactly on each other's boundary.
    pos = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 1.5]], dtype=dtype,
                       device=device)
    out = radius_graph(pos, 0.5, backend=backend)
    assert out.tolist() == [[1, 0], [0, 1]]


@pytest.mark.parametrize('device', devices)
def test_loop(device):
    pos = uniform(2_000, 3, seed=3, device=device)
    without = radius_graph(pos, 1.0, backend='torch')
    with_loop = radius_graph(pos, 1.0, loop=True, backend='torch')
    assert with_loop.size(1) == without.size(1) + 2_000
    is_loop = with_loop[0] == with_loop[1]
    assert torch.equal(with_loop[:, ~is_loop], without)
    assert torch.equal(with_loop[0, is_loop],
                       torch.arange(2_000, device=device))


@pytest.mark.parametrize('device', devices)
def test_duplicate_points_are_not_loops(device):
    pos = torch.zeros(4, 3, device=device)
    for backend in ['torch', 'brute']:
        out = radius_graph(pos, 0.1, backend=backend)
        assert out.size(1) == 12
        assert bool((out[0] != out[1]).all())


@requires_cluster
def test_cluster_matches_brute():
    pos = uniform(3_000, 3, seed=4)
    batch = torch.randint(0, 4, (3_000, ))  # Unsorted.
    for b in [None, batch.sort()[0], batch]:
        out = radius_graph(pos, 1.0, b, backend='cluster')
        expected = radius_graph(pos, 1.0, b, backend='brute')
        assert torch.equal(out, expected)
        assert torch.equal(radius_graph(pos, 1.0, b, backend='torch'),
                           expected)
    out = radius_graph(pos, 1.0, batch, loop=True, backend='cluster')
    assert torch.equal(
        out, radius_graph(pos, 1.0, batch, loop=True, backend='brute'))

    # torch-cluster itself excludes the boundary and truncates at 32.
    pos = uniform(2_000, 2, neighbours=60.0, seed=5)
    out = radius_graph(pos, 1.0, backend='cluster')
    assert torch.equal(out, radius_graph(pos, 1.0, backend='brute'))
    assert int(torch.bincount(out[1]).max()) > 32


@requires_cluster
def test_cluster_fallback(monkeypatch):
    pos = uniform(500, 3, seed=6)
    expected = radius_graph(pos, 1.0, backend='torch')
    # Simulate a torch-cluster wheel that fails to import.
    monkeypatch.setattr(radius_module, '_cluster_cache', None)
    monkeypatch.setitem(sys.modules, 'torch_cluster', None)
    assert torch.equal(radius_graph(pos, 1.0), expected)
    with pytest.raises(RuntimeError, match='torch-cluster'):
        radius_graph(pos, 1.0, backend='cluster')


def test_auto_without_cluster(monkeypatch):
    monkeypatch.setattr(radius_module, '_cluster_cache', (False, None))
    pos = uniform(500, 3, seed=6)
    assert torch.equal(radius_graph(pos, 1.0),
                       radius_graph(pos, 1.0, backend='brute'))


def nearest_k(edge_index, pos, k):
    # Reference truncation: per target, sort by (squared distance, source).
    pos = pos.cpu()
    src, tgt = edge_index.cpu().tolist()
    groups = {}
    for j, i in zip(src, tgt, strict=True):
        d2 = sum(float(pos[j, d] - pos[i, d])**2 for d in range(pos.size(1)))
        groups.setdefault(i, []).append((d2, j))
    out = []
    for i in sorted(groups):
        for j in sorted(j for _, j in sorted(groups[i])[:k]):
            out.append((j, i))
    return torch.tensor(out, dtype=torch.long).t().reshape(2, -1)


@pytest.mark.parametrize('device', devices)
def test_max_num_neighbors(device, reset_warning):
    pos = uniform(300, 3, neighbours=15.0, dtype=torch.float64, seed=7,
                  device=device)
    full = radius_graph(pos, 1.0)
    k = 5
    num_over = int((torch.bincount(full[1], minlength=300) > k).sum())
    assert num_over > 0

    with pytest.warns(UserWarning, match=f'of {num_over} target node'):
        out = radius_graph(pos, 1.0, max_num_neighbors=k, backend='torch')
    assert torch.equal(out.cpu(), nearest_k(full, pos, k))
    assert int(torch.bincount(out[1]).max()) == k

    # Deterministic, and identical across backends.  Warns once only.
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        backends = ['torch', 'brute'] + (['cluster'] if has_cluster
                                         and device == 'cpu' else [])
        for backend in backends:
            again = radius_graph(pos, 1.0, max_num_neighbors=k,
                                 backend=backend)
            assert torch.equal(again, out), backend


@pytest.mark.parametrize('device', devices)
def test_max_num_neighbors_ties_and_loops(device, reset_warning):
    # Node 0 has four sources at exactly the same distance.
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0],
                        [0.0, -1.0]], device=device)
    with pytest.warns(UserWarning, match='of 1 target node'):
        out = radius_graph(pos, 1.0, max_num_neighbors=2)
    assert out[0, out[1] == 0].tolist() == [1, 2]  # Smaller indices win.

    # A self-loop is the nearest neighbour and counts towards the k.
    out = radius_graph(pos, 1.0, loop=True, max_num_neighbors=2)
    assert out[0, out[1] == 0].tolist() == [0, 1]
    assert out[:, out[1] == 1].tolist() == [[0, 1], [1, 1]]


def test_max_num_neighbors_no_warning_without_drops(reset_warning):
    pos = uniform(500, 3, seed=8)
    full = radius_graph(pos, 1.0)
    k = int(torch.bincount(full[1]).max())
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert torch.equal(radius_graph(pos, 1.0, max_num_neighbors=k), full)
    assert not radius_module._TRUNCATION_WARNED


@pytest.mark.parametrize('device', devices)
@pytest.mark.parametrize('backend', ['auto', 'torch', 'brute'])
def test_empty_and_single(device, backend):
    pos = torch.empty(0, 3, device=device)
    out = radius_graph(pos, 1.0, torch.empty(0, dtype=torch.long,
                                             device=device), backend=backend)
    assert out.shape == (2, 0) and out.dtype == torch.long
    assert out.device == pos.device

    pos = torch.randn(1, 3, device=device)
    assert radius_graph(pos, 1.0, backend=backend).shape == (2, 0)
    out = radius_graph(pos, 1.0, loop=True, backend=backend)
    assert out.tolist() == [[0], [0]]


@pytest.mark.parametrize('device', devices)
def test_extreme_coordinates(device):
    # Far-apart clusters, a huge extent along one axis and sparse graph ids
    # must not overflow the int64 cell keys.
    gen = torch.Generator().manual_seed(9)
    pos = torch.randn(1_500, 3, generator=gen, dtype=torch.float64)
    pos[:500, 0] += 1e15
    pos[500:1_000] += 1e9
    batch = torch.randint(0, 3, (1_500, ), generator=gen) * 10**12
    pos, batch = pos.to(device), batch.to(device)
    for b in [None, batch]:
        out = radius_graph(pos, 1.0, b, backend='torch')
        assert out.size(1) > 0
        assert torch.equal(out, radius_graph(pos, 1.0, b, backend='brute'))

    # Many scattered clusters: the cell range needs compression.
    centres = torch.rand(40, 3, generator=gen, dtype=torch.float64) * 1e7
    pos = centres.repeat_interleave(25, 0) + torch.randn(
        1_000, 3, generator=gen, dtype=torch.float64)
    pos = pos.to(device)
    out = radius_graph(pos, 1.0, backend='torch')
    assert torch.equal(out, radius_graph(pos, 1.0, backend='brute'))


@pytest.mark.parametrize('device', devices)
def test_errors(device):
    pos = torch.rand(10, 3, device=device)
    for r in [0.0, -1.0, math.nan, math.inf]:
        with pytest.raises(ValueError, match="'r'"):
            radius_graph(pos, r)
    with pytest.raises(ValueError, match='2-D'):
        radius_graph(pos.view(-1), 1.0)
    with pytest.raises(ValueError, match='2-D'):
        radius_graph(pos.view(2, 5, 3), 1.0)
    for bad in [math.nan, math.inf]:
        p = pos.clone()
        p[3, 1] = bad
        with pytest.raises(ValueError, match='NaN or infinite'):
            radius_graph(p, 1.0)
    with pytest.raises(ValueError, match='one entry per node'):
        radius_graph(pos, 1.0, torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match='1-D'):
        radius_graph(pos, 1.0, torch.zeros(10, 1, dtype=torch.long))
    with pytest.raises(ValueError, match='backend'):
        radius_graph(pos, 1.0, backend='kdtree')
    with pytest.raises(ValueError, match='max_num_neighbors'):
        radius_graph(pos, 1.0, max_num_neighbors=-1)
    with pytest.raises(TypeError, match='floating point'):
        radius_graph(pos.long(), 1.0)
