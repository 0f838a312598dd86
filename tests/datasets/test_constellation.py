import math
import os

import pytest
import torch
from torch_geometric.loader import DataLoader

import torch_lie.datasets.constellation as cst
from torch_lie.datasets.constellation import (
    CONSTELLATION_SHAPES,
    Constellation,
    constellation_distance_features,
    constellation_patterns,
    generate_constellations,
)

# Small generation chunks, so that a few constellations span several chunks.
CHUNK = 8
SHAPE_SIZES = (3, 4, 5, 5)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(cst, '_PER_CHUNK', CHUNK)


def make(root, **kwargs):
    kwargs.setdefault('num_samples', 20)
    kwargs.setdefault('log', False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cst, '_PER_CHUNK', CHUNK)
        return Constellation(str(root), **kwargs)


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    r"""A shared cache: the base test split and its two variants, with
    distance features (20 constellations, 3 chunks)."""
    root = tmp_path_factory.mktemp('constellation')
    for variant in (None, 'T2', 'SE2'):
        make(root, split='test', variant=variant, features='distances')
    return root


def items(ds):
    return [ds[i] for i in range(len(ds))]


def pairwise(pos):
    return torch.cdist(pos.double(), pos.double())


# Generation ################################################################


def test_patterns():
    points, pattern = constellation_patterns()
    assert points.shape == (34, 2) and pattern.shape == (34, )
    sizes = torch.bincount(pattern).tolist()
    assert sizes == list(SHAPE_SIZES) * 2
    # Regular polygons: roots of unity (radius 1, centred at the origin).
    for p in range(3):
        poly = points[pattern == p]
        assert torch.allclose(poly.norm(dim=1), torch.ones(len(poly),
                                                           dtype=poly.dtype))
        assert torch.allclose(poly.mean(0), torch.zeros(2, dtype=poly.dtype),
                              atol=1e-12)
    L = points[pattern == 3].tolist()
    assert L == [[1, 1], [2, 1], [3, 1], [3, 2], [3, 3]]
    assert torch.equal(points[17:], points[:17])


def test_generate_statistics():
    gen = torch.Generator().manual_seed(0)
    batch = generate_constellations(4000, gen)
    assert batch.x is None and batch.pos.dtype == torch.float64
    counts = batch.mask.sum(1)
    assert int(counts.min()) >= 3 and int(counts.max()) <= 34
    # Valid points first, padding zero / -1.
    assert torch.equal(batch.mask,
                       torch.arange(34) < counts[:, None])
    assert bool((batch.pos[~batch.mask] == 0).all())
    assert bool((batch.pattern[~batch.mask] == -1).all())
    # At least one pattern kept; each pattern kept with probability ~1/2.
    assert bool((batch.y.sum(1) >= 1).all())
    assert abs(float(batch.y.double().mean()) / 2 - 0.5) < 0.02
    assert set(batch.y.unique().tolist()) == {0, 1, 2}
    # Points are shuffled: the first point's pattern is not always the same.
    assert len(batch.pattern[:, 0].unique()) == 8


def test_generate_geometry():
    r"""Without noise, every kept pattern is a rotated (|angle| <= 0.33 pi),
    translated and rescaled copy of its template."""
    gen = torch.Generator().manual_seed(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cst, '_NOISE', 0.0)
        batch = generate_constellations(50, gen)
    points, template_pattern = constellation_patterns()
    for s in range(50):
        pos = batch.pos[s][batch.mask[s]]
        pattern = batch.pattern[s][batch.mask[s]]
        scale = None
        for p in pattern.unique().tolist():
            mine = pos[pattern == p]
            ref = points[template_pattern == p]
            # Same multiset of pairwise distances up to one global scale.
            d_mine = pairwise(mine).flatten().sort().values
            d_ref = pairwise(ref).flatten().sort().values
            ratio = d_mine[-1] / d_ref[-1]
            scale = ratio if scale is None else scale
            assert torch.allclose(ratio, scale, rtol=1e-9)
            assert torch.allclose(d_mine, d_ref * ratio, atol=1e-9)


# The data set ##############################################################


def test_items_and_sizes(root):
    ds = make(root, split='test', features='distances')
    assert len(ds) == 20 and ds.split == 'test'
    assert Constellation.default_num_samples == {'train': 10_000,
                                                 'test': 1_000}
    for data in items(ds):
        n = data.num_nodes
        assert 3 <= n <= 34
        assert data.pos.shape == (n, 2) and data.pos.dtype == torch.float32
        assert data.x.shape == (n, 33)
        assert data.pattern.shape == (n, ) and data.pattern.dtype == torch.long
        assert data.y.shape == (1, 4) and data.y.dtype == torch.long
    assert 'variant' not in repr(ds) and "split='test'" in repr(ds)


def test_score(root):
    ds = make(root, split='test')
    y = ds.y
    assert ds.score(y) == {'accuracy': 1.0, 'exact_match': 1.0,
                           'accuracy_per_shape': dict.fromkeys(
                               ('triangle', 'square', 'pentagon', 'L'), 1.0)}
    pred = y.clone()
    pred[:5, 3] = (pred[:5, 3] + 1) % 3  # 5 of 20 "L" counts wrong
    score = ds.score(pred)
    assert score['accuracy'] == pytest.approx(75 / 80)
    assert score['exact_match'] == pytest.approx(15 / 20)
    assert score['accuracy_per_shape']['L'] == pytest.approx(15 / 20)
    assert score['accuracy_per_shape']['square'] == 1.0
    with pytest.raises(ValueError, match=r"'pred' must have shape \[20, 4\]"):
        ds.score(y[:3])


def test_default_size(tmp_path):
    ds = Constellation(str(tmp_path), split='test', log=False)
    assert len(ds) == 1000
    assert ds[0].x.shape == (ds[0].num_nodes, 1)
    assert bool((ds[0].x == 1).all())


def test_counts_match_patterns(root):
    for data in items(make(root, split='test', features='distances')):
        pattern = data.pattern
        assert bool((pattern >= 0).all()) and bool((pattern < 8).all())
        present = pattern.unique()
        # Every present pattern has all its points.
        for p in present.tolist():
            assert int((pattern == p).sum()) == SHAPE_SIZES[p % 4]
        counts = torch.bincount(present % 4, minlength=4)
        assert torch.equal(data.y[0], counts)
        assert set(data.y[0].tolist()) <= {0, 1, 2}
        assert int(data.y.sum()) >= 1


def test_rescaled_to_unit_box(root):
    for data in items(make(root, split='test', features='distances')):
        pos = data.pos
        assert float(pos.min()) == pytest.approx(-1.0, abs=1e-6)
        assert float(pos.max()) == pytest.approx(1.0, abs=1e-6)


def test_deterministic(tmp_path):
    a = make(tmp_path / 'a', split='train', features='distances')
    b = make(tmp_path / 'b', split='train', features='distances')
    for x, y in zip(items(a), items(b), strict=True):
        for key in ('pos', 'x', 'pattern', 'y'):
            assert torch.equal(x[key], y[key])
    c = make(tmp_path / 'c', split='train', seed=1)
    assert not torch.equal(a[0].pos, c[0].pos)


def test_splits_differ_and_prefixes(tmp_path, root):
    train = make(tmp_path, split='train')
    test = make(root, split='test', features='distances')
    assert not any(torch.equal(a.pos, b.pos) for a in items(train)[:5]
                   for b in items(test)[:5])
    # Smaller splits are prefixes of larger ones (across chunks).
    small = make(tmp_path, split='train', num_samples=11)
    for a, b in zip(items(small), items(train)[:11]):
        assert torch.equal(a.pos, b.pos) and torch.equal(a.y, b.y)


@pytest.mark.parametrize('variant', ['T2', 'SE2'])
def test_variants_are_rigid_motions(root, variant):
    base = make(root, split='test', features='distances')
    moved = make(root, split='test', variant=variant, features='distances')
    assert f"variant='{variant}'" in repr(moved)
    angles = []
    for a, b in zip(items(base), items(moved), strict=True):
        assert torch.equal(a.pattern, b.pattern) and torch.equal(a.y, b.y)
        # Distances unchanged (up to the float32 storage).
        assert torch.allclose(pairwise(a.pos), pairwise(b.pos), atol=1e-5)
        assert not torch.allclose(a.pos, b.pos, atol=1e-3)
        # The same invariant features.
        assert torch.allclose(a.x, b.x, atol=1e-5)
        # The rotation part from the first two points' difference vectors.
        da, db = a.pos[1] - a.pos[0], b.pos[1] - b.pos[0]
        angle = math.atan2(db[1], db[0]) - math.atan2(da[1], da[0])
        angles.append(math.remainder(angle, 2 * math.pi))
        if variant == 'T2':  # one translation for all points
            shift = b.pos - a.pos
            assert torch.allclose(shift, shift[:1].expand_as(shift),
                                  atol=1e-5)
    angles = torch.tensor(angles)
    if variant == 'T2':
        assert float(angles.abs().max()) < 1e-3
    else:
        assert float(angles.abs().max()) > 1.0


def test_variant_seeds_differ(root):
    t2 = make(root, split='test', variant='T2', features='distances')
    base = make(root, split='test', features='distances')
    shifts = torch.stack([(b.pos - a.pos)[0]
                          for a, b in zip(items(base), items(t2))])
    assert float(shifts.std(0).min()) > 0.1  # one translation per item


def test_distance_features(root):
    ds = make(root, split='test', features='distances')
    for data in items(ds):
        n = data.num_nodes
        d = pairwise(data.pos)
        for i in range(n):
            expected = torch.cat([d[i, :i], d[i, i + 1:]]).sort(
                descending=True).values
            assert torch.allclose(data.x[i, :n - 1].double(), expected,
                                  atol=1e-5)
            assert bool((data.x[i, n - 1:] == 0).all())  # zero padding
        assert bool((data.x[:, :n - 1] > 0).all())


def test_distance_features_function():
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(2, 6, 2, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    f = constellation_distance_features(pos, mask, num_features=7)
    assert f.shape == (2, 6, 7)
    assert bool((f[1, 4:] == 0).all())  # padded points
    assert bool((f[1, :4, 3:] == 0).all()) and bool((f[1, :4, :3] > 0).all())
    # Truncation keeps the largest distances.
    g = constellation_distance_features(pos, mask, num_features=2)
    assert torch.equal(g, f[..., :2])
    # Invariant to rotations and translations (float64), finite gradients.
    theta = torch.tensor(0.7, dtype=torch.float64)
    R = torch.stack([torch.stack([theta.cos(), -theta.sin()]),
                     torch.stack([theta.sin(), theta.cos()])])
    moved = pos @ R.T + torch.tensor([3.0, -1.0], dtype=torch.float64)
    assert torch.allclose(constellation_distance_features(moved, mask),
                          constellation_distance_features(pos, mask),
                          atol=1e-12)
    pos.requires_grad_(True)
    constellation_distance_features(pos, mask).sum().backward()
    assert bool(torch.isfinite(pos.grad).all())


def test_to_dense(root):
    ds = make(root, split='test', features='distances')
    dense = ds.to_dense()
    assert dense.pos.shape == (20, 34, 2) and dense.x.shape == (20, 34, 33)
    for i, data in enumerate(items(ds)):
        n = data.num_nodes
        assert int(dense.mask[i].sum()) == n
        assert torch.equal(dense.pos[i, :n], data.pos)
        assert torch.equal(dense.x[i, :n], data.x)
        assert torch.equal(dense.pattern[i, :n], data.pattern)
        assert bool((dense.pattern[i, n:] == -1).all())
        assert torch.equal(dense.y[i], data.y[0])
    sub = ds[torch.tensor([3, 1])].to_dense()
    assert torch.equal(sub.pos, dense.pos[[3, 1]])
    assert torch.equal(sub.y, dense.y[[3, 1]])


def test_data_loader(root):
    ds = make(root, split='test', features='distances')
    batch = next(iter(DataLoader(ds, batch_size=5)))
    assert batch.y.shape == (5, 4)
    assert batch.num_graphs == 5 and batch.pos.size(0) == batch.x.size(0)


def test_cache_reused(tmp_path, monkeypatch):
    make(tmp_path, split='train', features='distances')
    files = sorted(os.listdir(tmp_path / 'processed'))
    assert 'train_base_20_seed0_distances_v1.pt' in files

    def fail(*args, **kwargs):
        raise AssertionError('regenerated')

    monkeypatch.setattr(cst, 'generate_constellations', fail)
    again = make(tmp_path, split='train', features='distances')
    assert len(again) == 20
    assert sorted(os.listdir(tmp_path / 'processed')) == files
    with pytest.raises(AssertionError, match='regenerated'):
        make(tmp_path, split='train', features='distances',
             force_reload=True)


def test_interrupted_generation_leaves_no_cache(tmp_path, monkeypatch):
    real_save = torch.save

    def save_then_fail(obj, f, *args, **kwargs):
        f.write(b'half a file')
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, 'save', save_then_fail)
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path, split='test')
    processed = tmp_path / 'processed'
    assert not any(name.endswith('.pt') and name.startswith('test')
                   for name in os.listdir(processed))
    assert not any(name.endswith('.tmp') for name in os.listdir(processed))
    monkeypatch.setattr(torch, 'save', real_save)
    assert len(make(tmp_path, split='test')) == 20


def test_pre_transform_and_filter(tmp_path):
    def keep_big(data):
        return data.num_nodes >= 17

    def add_count(data):
        data.count = torch.tensor([data.num_nodes])
        return data

    ds = make(tmp_path, split='test', pre_filter=keep_big,
              pre_transform=add_count)
    full = make(tmp_path / 'full', split='test')
    expected = [d for d in items(full) if d.num_nodes >= 17]
    assert 1 < len(ds) == len(expected) < 20
    for a, b in zip(items(ds), expected):
        assert torch.equal(a.pos, b.pos)
        assert int(a.count) == a.num_nodes


@pytest.mark.parametrize('kwargs, match', [
    (dict(split='val'), "'split'"),
    (dict(variant='SO2'), "'variant'"),
    (dict(variant='se2'), "'variant'"),
    (dict(features='angles'), "'features'"),
    (dict(num_samples=0), "'num_samples'"),
    (dict(num_samples=2.5), "'num_samples'"),
    (dict(seed='a'), "'seed'"),
])
def test_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(tmp_path, **kwargs)
    assert not (tmp_path / 'processed').exists()


def test_shapes_constant():
    assert CONSTELLATION_SHAPES == ('triangle', 'square', 'pentagon', 'L')
    assert Constellation.shapes == CONSTELLATION_SHAPES
