import itertools
import math
import warnings

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from torch_lie.groups import SE2, SE3, SO2, SO3, T, group_resolver
from torch_lie.testing import assert_invariant_in_distribution
from torch_lie.transforms import Lift
from torch_lie.transforms import lift as lift_module
from torch_lie.transforms.lift import complete_graph, expand_edges

LIFTS = [
    ('T3', 1), ('SO3', 2), ('SE3', 3), ('SE3-matrix', 2),
    ('T2', 1), ('SO2', 1), ('SE2', 2), ('SE2-C4', 1),
]


def planar(pos, group):
    return pos if group.space_dim == 3 else pos[:, :2]


def naive_edges(pos, r, batch, k):
    r"""Lifted edges by double loop: all element pairs of points of the same
    graph within r (or all, for r=None)."""
    edges = set()
    n = pos.size(0)
    for i, j in itertools.product(range(n), range(n)):
        if batch[i] != batch[j]:
            continue
        if r is not None and (pos[i] - pos[j]).norm() > r:
            continue
        for a, b in itertools.product(range(k), range(k)):
            edges.add((j * k + a, i * k + b))
    return edges


@pytest.mark.parametrize('name,num_samples', LIFTS)
@pytest.mark.parametrize('r', [None, 1.2])
def test_lift_shapes_and_edges(real_molecule, name, num_samples, r):
    group = group_resolver(name)
    pos, x = real_molecule('CH3CH2OH')
    pos = planar(pos, group)
    lift = Lift(group, num_samples, r=r)
    data = lift(Data(pos=pos, x=x, y=torch.tensor([1.5])))
    k = lift.lift_size
    M = pos.size(0) * k
    assert data.num_nodes == M
    assert data.x.shape == (M, x.size(1))
    assert torch.equal(data.x, x.repeat_interleave(k, 0))
    assert torch.equal(data.point_index, torch.arange(pos.size(0)).repeat_interleave(k))
    assert data.q.shape == (M, group.q_dim)
    assert data.edge_attr.shape == (data.edge_index.size(1), group.edge_dim)
    assert torch.equal(data.y, torch.tensor([1.5]))
    assert torch.equal(data.pos, pos)

    expected = naive_edges(pos, r, torch.zeros(pos.size(0)), k)
    got = set(map(tuple, data.edge_index.t().tolist()))
    assert got == expected
    assert data.edge_index.size(1) == len(expected)  # no duplicates
    # Sorted by target, and the pair embedding is that of (target, source).
    dst = data.edge_index[1]
    assert bool((dst[1:] >= dst[:-1]).all())
    src = data.edge_index[0]
    ref = group.pair_embedding(data.g[dst], data.g[src], data.q[dst], data.q[src])
    assert torch.equal(data.edge_attr, ref)
    assert torch.equal(group.edge_attr(data.g, data.edge_index, data.q), ref)


def test_lift_does_not_modify_input_and_drops_input_edges(ethanol):
    pos, x = ethanol
    bonds = torch.tensor([[0, 1], [1, 0]])
    data = Data(pos=pos, x=x, edge_index=bonds, edge_attr=torch.ones(2, 4),
                bond_type=torch.tensor([1, 1]), z=torch.arange(pos.size(0)))
    out = Lift('SE3', num_samples=2)(data)
    assert data.edge_index is bonds and data.x is x and data.num_nodes == 9
    assert out.edge_attr.shape == (18 * 18, SE3().edge_dim)
    assert 'bond_type' not in out  # edge-level: dropped with the bonds
    assert torch.equal(out.z, torch.arange(9))  # point-level, unchanged


def test_lift_without_features_has_none(ethanol):
    data = Lift('SO3', num_samples=2)(Data(pos=ethanol[0]))
    assert data.x is None and data.num_nodes == 18


def test_lift_repr():
    assert repr(Lift('SE3', num_samples=4, r=2.5, max_num_neighbors=16)) == (
        'Lift(SE3(), num_samples=4, r=2.5, max_num_neighbors=16)')
    assert repr(Lift(SE2(num_rotations=4))) == (
        'Lift(SE2(num_rotations=4), num_samples=1, r=None, '
        'max_num_neighbors=None)')


def test_lift_batches_point_index_by_points(real_molecule):
    lift = Lift('SE3', num_samples=3, r=2.0)
    datas = [lift(Data(pos=real_molecule(name)[0]))
             for name in ('CH3CH2OH', 'H2O', 'C6H6')]
    batch = next(iter(DataLoader(datas, batch_size=3)))
    offsets = [0, 9, 12]
    for i, data in enumerate(datas):
        sel = batch.batch == i
        assert torch.equal(batch.point_index[sel], data.point_index + offsets[i])
        assert torch.equal(batch.pos[batch.point_index[sel]],
                           data.pos[data.point_index])
    # Edges are shifted by lifted elements, as for any PyG graph.
    assert torch.equal(batch.edge_index[:, :datas[0].num_edges],
                       datas[0].edge_index)
    assert batch.num_nodes == 3 * (9 + 3 + 12)


def test_functional_lift_matches_batched_transform(real_molecule):
    lift = Lift('T3', r=1.6)
    pos = [real_molecule(name)[0] for name in ('CH3CH2OH', 'C6H6')]
    batch = torch.tensor([0] * 9 + [1] * 12)
    lifted = lift.lift(torch.cat(pos), batch=batch)
    singles = [lift(Data(pos=p)) for p in pos]
    joined = next(iter(DataLoader(singles, batch_size=2)))
    of_batch = lift(Batch.from_data_list([Data(pos=p) for p in pos]))
    for out in (lifted, of_batch):
        assert torch.equal(out.edge_index, joined.edge_index)
        assert torch.equal(out.edge_attr, joined.edge_attr)
        assert torch.equal(out.batch, joined.batch)
        assert out.num_graphs == 2


@pytest.mark.parametrize('r', [None, 2.0])
def test_lift_of_a_batch_keeps_graphs_apart(real_molecule, r):
    r"""Lifting a collated Batch respects its batch vector: no edge joins
    two graphs, and the element-level batch vector has one entry per
    element, also with several samples per point."""
    clouds = [Data(pos=real_molecule(name)[0], y=torch.ones(1))
              for name in ('CH3CH2OH', 'H2O', 'CH4')]
    lifted = Lift('SE3', num_samples=2, r=r)(Batch.from_data_list(clouds))
    assert lifted.batch.shape == (2 * (9 + 3 + 5),)
    assert torch.equal(lifted.batch, torch.tensor([0] * 18 + [1] * 6 +
                                                  [2] * 10))
    src, dst = lifted.edge_index
    assert torch.equal(lifted.batch[src], lifted.batch[dst])
    assert lifted.num_graphs == 3 and lifted.y.shape == (3,)
    if r is None:
        assert lifted.edge_index.size(1) == 18 ** 2 + 6 ** 2 + 10 ** 2


def test_lift_of_equal_clouds_as_a_3d_tensor(benzene_2d):
    r"""Points [B, N, n] lift like a batch of B graphs of N points."""
    pos, x = benzene_2d
    clouds = torch.stack([pos, pos + 1.0])
    feats = torch.stack([x, 2 * x])
    lift = Lift('SE2-C4')
    dense = lift.lift(clouds, feats)
    batch = lift(Batch.from_data_list([Data(pos=p, x=f) for p, f in
                                       zip(clouds, feats)]))
    for key in ('g', 'q', 'x', 'point_index', 'batch', 'edge_index',
                'edge_attr'):
        assert torch.equal(dense[key], batch[key]), key
    assert dense.num_graphs == 2
    with pytest.raises(ValueError, match='same graph and point'):
        lift.lift(clouds, feats[:, :5])
    with pytest.raises(ValueError, match="no 'batch'"):
        lift.lift(clouds, batch=torch.zeros(12, dtype=torch.long))


@pytest.mark.parametrize('name', ['T2', 'SO2', 'SE2-C4', 'T3'])
def test_lift_is_differentiable(real_molecule, name):
    group = group_resolver(name)
    pos = planar(real_molecule('CH3CH2OH')[0], group)[:5].requires_grad_()
    lift = Lift(group, r=2.0)

    def embed(p):
        return lift.lift(p).edge_attr

    assert torch.autograd.gradcheck(embed, (pos, ))


@pytest.mark.parametrize('name', ['SO3', 'SE3', 'SE2'])
def test_random_lift_gradients_are_finite(ethanol, name):
    pos = planar(ethanol[0], group_resolver(name)).clone().requires_grad_()
    lifted = Lift(name, num_samples=2).lift(pos)
    lifted.edge_attr.pow(2).sum().backward()
    assert torch.isfinite(pos.grad).all() and pos.grad.abs().sum() > 0


def test_max_num_neighbors_keeps_nearest_and_warns():
    pos = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3]])
    lift = Lift('T3', r=10.0, max_num_neighbors=2)
    with pytest.warns(UserWarning, match='max_num_neighbors'):
        data = lift(Data(pos=pos))
    neighbours = {i: sorted(data.edge_index[0, data.edge_index[1] == i].tolist())
                  for i in range(4)}
    # Each point keeps itself and its nearest other point.
    assert neighbours == {0: [0, 1], 1: [0, 1], 2: [0, 2], 3: [0, 3]}


def test_max_num_neighbors_without_truncation_is_exact(ethanol):
    full = Lift('SE2-C4', r=None)(Data(pos=ethanol[0][:, :2]))
    capped = Lift('SE2-C4', r=None, max_num_neighbors=9)(Data(pos=ethanol[0][:, :2]))
    assert torch.equal(full.edge_index, capped.edge_index)


def test_empty_and_single_point_graphs():
    for group in (T(3), SE3(), SO2(), SE2(num_rotations=4)):
        n = group.space_dim
        empty = Lift(group)(Data(pos=torch.zeros(0, n)))
        assert empty.num_nodes == 0
        assert empty.edge_index.shape == (2, 0)
        assert empty.edge_attr.shape == (0, group.edge_dim)
        k = group.lift_size()
        one = Lift(group)(Data(pos=torch.ones(1, n)))
        assert one.num_nodes == k and one.edge_index.size(1) == k * k
        assert torch.isfinite(one.edge_attr).all()


def test_points_at_origin_are_finite():
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0]], requires_grad=True)
    lifted = Lift('SO2').lift(pos)
    lifted.edge_attr.sum().backward()
    assert torch.equal(lifted.g[0], torch.eye(2))
    assert lifted.q[0].item() == 0
    assert torch.isfinite(lifted.edge_attr).all() and torch.isfinite(pos.grad).all()

    pos3 = torch.zeros(2, 3, requires_grad=True)
    lifted = Lift('SO3', num_samples=2).lift(pos3)
    lifted.edge_attr.sum().backward()
    R = lifted.g
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand(4, 3, 3),
                          atol=1e-6)
    assert torch.isfinite(pos3.grad).all()


def test_discrete_lift_permutes_under_quarter_turns(benzene_2d):
    pos = benzene_2d[0]
    group = SE2(num_rotations=4)
    lift = Lift(group)
    h = group.from_parts(group.exp(torch.tensor([math.pi / 2, 0.0, 0.0],
                                                dtype=pos.dtype))[:2, :2],
                         torch.tensor([0.3, -2.0], dtype=pos.dtype))
    g = lift.lift(pos).g.view(-1, 4, 3, 3)
    moved = lift.lift(group.act(h, pos)).g.view(-1, 4, 3, 3)
    # Element s of a moved point is element s + 1 of the original, moved.
    assert torch.allclose(moved[:, 1:], group.compose(h, g)[:, :-1], atol=1e-12)
    assert torch.allclose(moved[:, 0], group.compose(h, g)[:, -1], atol=1e-12)


def test_complete_graph_and_expand_edges():
    batch = torch.tensor([0, 0, 1, 1, 1, 3])
    edges = complete_graph(6, batch)
    expected = [[j, i] for i in range(6) for j in range(6) if batch[i] == batch[j]]
    assert edges.t().tolist() == expected  # sorted by target, then source
    lifted = expand_edges(edges, 6, 3)
    expected = [[j * 3 + a, i * 3 + b] for i in range(6) for b in range(3)
                for j in range(6) if batch[i] == batch[j] for a in range(3)]
    assert lifted.t().tolist() == expected


def test_lift_errors():
    for num_samples in (0, 2.0, 2.5, True, '2'):
        with pytest.raises(ValueError, match='num_samples'):
            Lift('SE3', num_samples=num_samples)
    with pytest.raises(ValueError, match='deterministic'):
        Lift('T3', num_samples=2)
    with pytest.raises(ValueError, match='deterministic'):
        Lift('SE2-C4', num_samples=4)
    for r in (0.0, -1.0, float('nan'), float('inf')):
        with pytest.raises(ValueError, match="'r'"):
            Lift('T3', r=r)
    with pytest.raises(ValueError, match='max_num_neighbors'):
        Lift('T3', max_num_neighbors=0)
    with pytest.raises(ValueError, match='data.pos'):
        Lift('T3')(Data(x=torch.ones(3, 1)))
    with pytest.raises(ValueError, match=r'\[N, 3\]'):
        Lift('SE3')(Data(pos=torch.ones(4, 2)))
    with pytest.raises(ValueError, match='NaN'):
        Lift('SO2')(Data(pos=torch.tensor([[0.0, 1.0], [float('nan'), 0.0]])))
    with pytest.raises(ValueError, match='NaN'):
        Lift('T2', r=1.0)(Data(pos=torch.tensor([[0.0, float('inf')]])))
    with pytest.raises(ValueError, match=r"'x' must hold one row.*\[4, F\]"):
        Lift('SE3', 2)(Data(pos=torch.randn(4, 3), x=torch.randn(5, 2)))
    lifted = Lift('T3')(Data(pos=torch.randn(4, 3)))
    with pytest.raises(ValueError, match='already lifted'):
        Lift('T3')(lifted)
    with pytest.raises(ValueError, match='already lifted'):
        Lift('T3')(next(iter(DataLoader([lifted], batch_size=1))))
    unsorted = torch.tensor([1, 0, 1, 0])
    with pytest.raises(ValueError, match='sorted'):
        Lift('T3').lift(torch.randn(4, 3), batch=unsorted)
    with pytest.raises(ValueError, match=r"'batch' must have shape \[4\]"):
        Lift('T3').lift(torch.randn(4, 3), batch=torch.zeros(3).long())


def test_non_finite_points_raise_under_compile():
    r"""The finiteness check also holds in compiled code (a NaN point must
    not become the identity element with q = 0)."""
    lift = Lift('SO2')
    compiled = torch.compile(lambda p: lift.lift(p).q, backend='eager')
    pos = torch.tensor([[0.0, 1.0], [float('nan'), 0.0]])
    with pytest.raises(ValueError, match='NaN'):
        compiled(pos)
    torch.testing.assert_close(compiled(pos[:1]), torch.ones(1, 1))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_lift_on_device(device, dtype):
    pos = torch.randn(20, 3, dtype=dtype, device=device)
    batch = torch.arange(20, device=device) // 7
    for group in (T(3), SO3(), SE3()):
        lifted = Lift(group, group.lift_size() if group.deterministic else 2,
                      r=1.5).lift(pos, batch=batch)
        assert lifted.edge_attr.device == pos.device
        assert lifted.edge_attr.dtype == dtype


def test_lift_as_dataset_transform_and_pickle(tmp_path, real_molecule):
    import pickle

    from torch_geometric.data import InMemoryDataset

    class Molecules(InMemoryDataset):
        def __init__(self, root, transform=None):
            super().__init__(root, transform)
            self.load(self.processed_paths[0])

        @property
        def processed_file_names(self):
            return ['data.pt']

        def process(self):
            self.save([Data(pos=real_molecule(name)[0].float(),
                            y=torch.tensor([float(i)]))
                       for i, name in enumerate(('CH3CH2OH', 'H2O', 'C6H6'))],
                      self.processed_paths[0])

    lift = pickle.loads(pickle.dumps(Lift('SE3', num_samples=2, r=2.0)))
    dataset = Molecules(tmp_path, transform=lift)
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch.num_nodes == 2 * (9 + 3 + 12)
    assert batch.edge_attr.shape[1] == 6
    assert torch.equal(batch.y, torch.tensor([0.0, 1.0, 2.0]))
    # Random lifts are drawn afresh on every access.
    assert not torch.equal(dataset[0].g, dataset[0].g)


def test_lifted_data_loads_safely(tmp_path, ethanol):
    r"""torch.load's default (weights_only=True) reads lifted data."""
    pos, x = ethanol
    lifted = Lift('SE3', num_samples=2, r=2.0)(Data(pos=pos, x=x))
    torch.save(lifted, tmp_path / 'lifted.pt')
    loaded = torch.load(tmp_path / 'lifted.pt')
    assert type(loaded) is type(lifted)
    assert torch.equal(loaded.edge_attr, lifted.edge_attr)
    assert loaded.lift == lifted.lift


@pytest.mark.parametrize('name,k', [('SO2', 1), ('SO3', 2)])
def test_unchecked_non_finite_points_stay_non_finite(name, k):
    r"""Where the check is off (compiled callers that validated their
    inputs), a NaN point lifts to NaN elements and q, never to a finite
    element (the origin's identity with q = 0); the origin still does."""
    from torch_lie.transforms.lift import trusted_positions
    n = 3 if name == 'SO3' else 2
    pos = torch.tensor([[float('nan')] * n, [0.0] * n, [1.0] * n])
    with trusted_positions():
        lifted = Lift(name, k).lift(pos)
    assert lifted.g[:k].isnan().all() and lifted.q[:k].isnan().all()
    assert torch.isfinite(lifted.g[k:]).all()
    assert torch.equal(lifted.q[k:2 * k], torch.zeros(k, 1))


def test_sampled_neighbours(ethanol):
    r"""Each lifted element attends to num_neighbor_samples elements of its
    neighbourhood, drawn uniformly without replacement; seeded draws
    repeat."""
    pos, x = ethanol
    full = Lift('SE3', 2, max_num_neighbors=4)
    lift = Lift('SE3', 2, max_num_neighbors=4, num_neighbor_samples=3)
    assert not lift.full_attention
    assert repr(lift) == ('Lift(SE3(), num_samples=2, r=None, '
                          'max_num_neighbors=4, num_neighbor_samples=3)')
    assert 'num_neighbor_samples' not in repr(full)
    candidates = full.lift(pos).edge_index
    pairs = set(map(tuple, candidates.T.tolist()))
    counts = torch.zeros(len(pairs))
    index = {pair: i for i, pair in enumerate(sorted(pairs))}
    draws = 2000
    for _ in range(draws):
        edge_index = lift.lift(pos, x).edge_index
        assert torch.equal(torch.bincount(edge_index[1]),
                           torch.full((2 * len(pos), ), 3))
        key = edge_index[1] * 1000 + edge_index[0]
        assert torch.equal(key, key.sort().values)  # sorted, no repeats
        assert torch.unique(key).numel() == key.numel()
        for pair in edge_index.T.tolist():
            counts[index[tuple(pair)]] += 1
    # Every candidate (8 per element) kept with probability 3/8.
    assert len(pairs) == 8 * 2 * len(pos)
    expected = draws * 3 / 8
    assert (counts - expected).abs().max() < 5 * math.sqrt(expected * 5 / 8)
    # Reproducible with a generator; fewer candidates than samples: all.
    g1, g2 = (torch.Generator().manual_seed(1) for _ in range(2))
    assert torch.equal(lift.lift(pos, generator=g1).edge_index,
                       lift.lift(pos, generator=g2).edge_index)
    many = Lift('SE3', 2, max_num_neighbors=4, num_neighbor_samples=100)
    assert torch.equal(many.lift(pos).edge_index, candidates)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match='num_neighbor_samples'):
            Lift('SE3', 2, num_neighbor_samples=bad)


def test_sampled_neighbours_invariant_in_distribution(ethanol, monkeypatch):
    r"""The distances to the sampled neighbours have the same distribution
    for moved copies of a molecule; drawn by a rule that sees absolute
    positions (the highest sources), they do not."""
    pos, _ = ethanol
    lift = Lift('SE3', 2, max_num_neighbors=5, num_neighbor_samples=3)

    def distances(p):
        src, dst = lift.lift(p).edge_index
        d = (p[src // 2] - p[dst // 2]).norm(dim=-1)
        return torch.zeros(2 * len(p), dtype=p.dtype).index_add_(0, dst, d)

    torch.manual_seed(0)
    assert_invariant_in_distribution(distances, pos, SE3(), num_draws=64)
    seen = {}

    def highest(edge_index, num, num_nodes, generator=None):
        src, dst = edge_index
        key = seen['pos'][src // 2, 0]  # ties: the lower element
        order = key.argsort(descending=True, stable=True)
        order = order[dst[order].argsort(stable=True)]
        deg = torch.bincount(dst, minlength=num_nodes)
        rank = torch.arange(dst.numel()) - (deg.cumsum(0) - deg)[dst[order]]
        return edge_index[:, order[rank < num].sort().values]

    def biased(p):
        seen['pos'] = p
        return distances(p)
    monkeypatch.setattr(lift_module, 'sample_edges', highest)
    with pytest.raises(AssertionError, match='standard errors'):
        assert_invariant_in_distribution(biased, pos, SE3(), num_draws=8)


def test_nearest_points_without_radius_do_not_warn(ethanol, monkeypatch):
    r"""Without a radius, max_num_neighbors asks for the nearest points:
    dropping the others is no surprise (no warning, and the once-per-process
    warning of radius_graph stays armed)."""
    from torch_lie.utils import radius as radius_module
    monkeypatch.setattr(radius_module, '_TRUNCATION_WARNED', False)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        data = Lift('T3', max_num_neighbors=3)(Data(pos=ethanol[0]))
    assert torch.equal(torch.bincount(data.edge_index[1]),
                       torch.full((9, ), 3))
    with pytest.warns(UserWarning, match='max_num_neighbors'):
        Lift('T3', r=10.0, max_num_neighbors=3)(Data(pos=ethanol[0]))


def test_paper_qm9_neighbourhoods(real_molecule):
    r"""The paper's QM9 model: 25 of the 52 elements of the 13 nearest
    atoms (all of them in small molecules)."""
    from torch_lie.nn import LieTransformer

    lift = LieTransformer.paper('qm9_paper', hidden_channels=16,
                                num_layers=1).lift
    assert (lift.num_samples, lift.max_num_neighbors,
            lift.num_neighbor_samples) == (4, 13, 25)
    pos, _ = real_molecule('C6H6')  # 12 atoms: 48 elements
    big = lift.lift(pos).edge_index
    assert torch.equal(torch.bincount(big[1]), torch.full((48, ), 25))
    pos, _ = real_molecule('CH4')  # 5 atoms: 20 elements, all
    small = lift.lift(pos).edge_index
    assert torch.equal(torch.bincount(small[1]), torch.full((20, ), 20))
