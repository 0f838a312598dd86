import itertools
import os

import pytest
import torch
from torch.utils.data import DataLoader
from torchdiffeq import odeint

import torch_lie.datasets.spring_dynamics as sd
from torch_lie.datasets import (
    SpringDynamics,
    SpringSample,
    spring_hamiltonian,
    spring_symmetries,
    spring_vector_field,
)

# Small generation chunks, so that a few systems span several chunks.
CHUNK = 4


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(sd, '_SYSTEMS_PER_CHUNK', CHUNK)


@pytest.fixture(scope='module')
def train10(tmp_path_factory):
    r"""A shared, read-only training split of 10 systems (3 chunks)."""
    root = tmp_path_factory.mktemp('spring')
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sd, '_SYSTEMS_PER_CHUNK', CHUNK)
        return SpringDynamics(root, num_systems=10, log=False)


def make(root, **kwargs):
    kwargs.setdefault('num_systems', CHUNK)
    kwargs.setdefault('log', False)
    return SpringDynamics(root, **kwargs)


def all_files(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _, files in os.walk(root) for f in files)


def random_system(batch=(5, ), n=6, dim=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(*batch, 2, n, dim, generator=gen, dtype=torch.float64)
    m = 0.1 + 3 * torch.rand(*batch, n, generator=gen, dtype=torch.float64)
    k = 5 * torch.rand(*batch, n, generator=gen, dtype=torch.float64)
    return z, torch.stack([m, k], dim=-1)


def rel_energy_drift(ds):
    energy = spring_hamiltonian(ds.trajectories, ds.sys_params[:, None])
    return (energy - energy[:, :1]).abs().amax(1) / energy[:, 0]


# Hamiltonian and vector field ##############################################


def test_hamiltonian_matches_explicit_sum():
    z, sys_params = random_system(batch=(3, ), n=4)
    q, p = z[:, 0], z[:, 1]
    m, k = sys_params[..., 0], sys_params[..., 1]
    for b in range(3):
        expected = sum(p[b, i].pow(2).sum() / (2 * m[b, i]) for i in range(4))
        # 1/2 over ordered pairs == each unordered pair once.
        expected += sum(k[b, i] * k[b, j] * (q[b, i] - q[b, j]).pow(2).sum()
                        for i, j in itertools.combinations(range(4), 2))
        torch.testing.assert_close(spring_hamiltonian(z, sys_params)[b],
                                   expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize('batch,dim', [((7, ), 2), ((2, 3), 3)])
def test_vector_field_is_j_grad_h(batch, dim):
    z, sys_params = random_system(batch=batch, dim=dim)
    z.requires_grad_(True)
    energy = spring_hamiltonian(z, sys_params)
    assert energy.shape == batch
    (grad, ) = torch.autograd.grad(energy.sum(), z)
    expected = torch.stack([grad[..., 1, :, :], -grad[..., 0, :, :]], -3)
    out = spring_vector_field(z.detach(), sys_params)
    assert out.shape == z.shape
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_functions_broadcast_sys_params():
    z, sys_params = random_system(batch=(4, ))
    zs = torch.stack([z, 2 * z], dim=1)  # [B, T, 2, N, 2]
    energy = spring_hamiltonian(zs, sys_params[:, None])
    assert energy.shape == (4, 2)
    torch.testing.assert_close(energy[:, 0], spring_hamiltonian(z, sys_params))
    field = spring_vector_field(zs, sys_params[:, None])
    torch.testing.assert_close(field[:, 1],
                               spring_vector_field(2 * z, sys_params))


def test_functions_reject_bad_shapes():
    z, sys_params = random_system()
    with pytest.raises(ValueError, match="'z'"):
        spring_hamiltonian(z[:, 0], sys_params)
    with pytest.raises(ValueError, match="'sys_params'"):
        spring_vector_field(z, sys_params[..., :1])
    with pytest.raises(ValueError, match="'sys_params'"):
        spring_vector_field(z, sys_params[:, :5])


# Ground truth ##############################################################


def test_energy_conservation(tmp_path):
    # A finer RK4 grid conserves the energy to < 1e-6 relative drift ...
    fine = make(tmp_path, substeps=8)
    assert rel_energy_drift(fine).max() < 1e-6
    # ... and the paper's protocol (one RK4 step per interval) drifts only by
    # RK4's discretisation error, which shrinks as h^5.
    coarse = make(tmp_path)
    half = make(tmp_path, substeps=2)
    ratio = rel_energy_drift(coarse) / rel_energy_drift(half)
    assert ratio.median() > 16
    assert rel_energy_drift(coarse).median() < 1e-4
    # Same initial conditions and times, whatever the substeps.
    torch.testing.assert_close(fine.trajectories[:, 0],
                               coarse.trajectories[:, 0], rtol=0, atol=0)
    assert torch.equal(fine.ts, torch.linspace(0, 5, 500,
                                               dtype=torch.float64))


def test_initial_distribution(tmp_path, monkeypatch):
    monkeypatch.setattr(sd, '_SYSTEMS_PER_CHUNK', 100)
    ds = make(tmp_path, num_systems=100)
    assert ds.trajectories.shape == (100, 500, 2, 6, 2)
    m, k = ds.sys_params[..., 0], ds.sys_params[..., 1]
    assert 0.1 <= m.min() and m.max() <= 3.1 and abs(m.mean() - 1.6) < 0.15
    assert 0.0 <= k.min() and k.max() <= 5.0 and abs(k.mean() - 2.5) < 0.25
    q0, p0 = ds.trajectories[:, 0, 0], ds.trajectories[:, 0, 1]
    assert abs(q0.std() - 0.4) < 0.04 and abs(q0.mean()) < 0.04
    assert abs(p0.std() - 0.6) < 0.06 and abs(p0.mean()) < 0.06


def test_rollout_of_true_dynamics_matches_targets(train10):
    # The true vector field, rolled out like a model on an item's `ts`,
    # reproduces the targets (the loss floor of the protocol is zero).
    batch = next(iter(DataLoader(train10, batch_size=32, shuffle=True,
                                 generator=torch.Generator().manual_seed(0))))
    pred = odeint(lambda t, z: spring_vector_field(z, batch.sys_params),
                  batch.z0, batch.ts[0], method='rk4')
    torch.testing.assert_close(pred.movedim(0, 1), batch.z, rtol=0,
                               atol=1e-10)


def test_energy_drift(train10):
    drift = sd.spring_energy_drift(train10.trajectories, train10.sys_params)
    assert drift.shape == (10, ) and drift.dtype == torch.float64
    # The end's drift is at most the largest along the trajectory, and RK4
    # with dt = 5 / 499 keeps it small.
    assert (drift > 0).all() and (drift <= rel_energy_drift(train10)).all()
    assert drift.max() < 1e-3
    moved = train10.trajectories.clone()
    moved[:, -1, 1] *= 2  # momenta doubled at the end: kinetic energy x4
    assert (sd.spring_energy_drift(moved, train10.sys_params) > 0.1).all()
    moved[3, 7, 0, 0, 0] = float('nan')
    drift = sd.spring_energy_drift(moved, train10.sys_params)
    assert drift[3].isinf() and drift.isfinite().sum() == 9


def test_paper_splits(tmp_path):
    data = SpringDynamics.paper_splits(tmp_path, n_train=6, train_systems=8,
                                       n_val=4, n_test=5, n_test_long=2,
                                       log=False)
    assert {k: (len(v), v.chunk_len + 1) for k, v in data.items()} == {
        'train': (6, 5), 'val': (4, 5), 'test': (5, 5), 'test_long': (2, 100)}
    assert data['test'].split == data['test_long'].split == 'test'
    # Non-overlapping chunks of states, and the same systems in both tests.
    assert data['train'].chunk_stride == 5
    assert torch.equal(data['test_long'].sys_params, data['test'].sys_params[:2])
    shared = SpringDynamics.paper_splits(tmp_path, n_train=6, train_systems=8,
                                         n_val=10, n_test=5, log=False,
                                         protocol='shared')
    assert len(shared['val']) == 6  # min(n_val, n_train)
    assert shared['train'].chunk_len == 5 and shared['test_long'].chunk_len == 100
    with pytest.raises(ValueError, match="'protocol' must be one of"):
        SpringDynamics.paper_splits(tmp_path, 6, protocol='mine')


# Reproducibility and caching ###############################################


def test_reproducible(tmp_path, train10):
    same = make(tmp_path / 'a', num_systems=10)
    assert torch.equal(same.trajectories, train10.trajectories)
    assert torch.equal(same.sys_params, train10.sys_params)
    other_seed = make(tmp_path / 'b', seed=1)
    assert not torch.isclose(other_seed.sys_params,
                             train10.sys_params[:4]).any()
    val = make(tmp_path / 'a', split='val')
    test = make(tmp_path / 'a', split='test')
    for a, b in itertools.combinations([train10, val, test], 2):
        assert not torch.isclose(a.sys_params[:4], b.sys_params).any()
    assert all_files(tmp_path / 'a') == [
        'spring_test_4_0.pt', 'spring_train_10_0.pt', 'spring_val_4_0.pt'
    ]


def test_systems_do_not_depend_on_split_size(tmp_path, train10):
    small = make(tmp_path, num_systems=5)
    assert torch.equal(small.trajectories, train10.trajectories[:5])
    assert torch.equal(small.sys_params, train10.sys_params[:5])


def test_cache_is_reused(tmp_path, monkeypatch):
    first = make(tmp_path)
    monkeypatch.setattr(sd, '_integrate', None)  # Any generation fails.
    second = make(tmp_path, chunk_len=100, dtype=torch.float32)
    torch.testing.assert_close(second.trajectories,
                               first.trajectories.float())
    with pytest.raises(TypeError):
        make(tmp_path, force_reload=True)


def test_cache_mismatch(tmp_path):
    ds = make(tmp_path)
    data = torch.load(ds.path, weights_only=True)
    data['meta']['num_particles'] = 5
    torch.save(data, ds.path)
    with pytest.raises(RuntimeError, match='force_reload'):
        make(tmp_path)
    assert torch.equal(make(tmp_path, force_reload=True).trajectories,
                       ds.trajectories)


def test_truncated_cache_and_orphaned_temporary_files(tmp_path):
    ds = make(tmp_path)
    data = open(ds.path, 'rb').read()
    with open(ds.path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match=r"is unreadable \(.*\); pass "
                       r"'force_reload=True' \(or delete it\)"):
        make(tmp_path)
    # A write killed before its rename leaves a temporary file; the next
    # generation of the same file removes it.
    orphan = tmp_path / f'.{os.path.basename(ds.path)}.abc123.tmp'
    orphan.write_bytes(b'partial')
    assert torch.equal(make(tmp_path, force_reload=True).trajectories,
                       ds.trajectories)
    assert not orphan.exists()


def test_resume_after_interruption(tmp_path, monkeypatch, train10):
    calls = []
    integrate = sd._integrate

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return integrate(*args, **kwargs)

    monkeypatch.setattr(sd, '_integrate', failing)
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path, num_systems=10)
    # The first chunk is kept, nothing else (no temporary file).
    assert all_files(tmp_path) == [
        os.path.join('partial', 'spring_train_10_0', 'chunk_00000.pt')
    ]

    calls.clear()
    monkeypatch.setattr(sd, '_integrate', integrate)
    counting = make(tmp_path, num_systems=10)
    assert torch.equal(counting.trajectories, train10.trajectories)
    assert torch.equal(counting.sys_params, train10.sys_params)
    assert torch.equal(counting.ts, train10.ts)
    assert all_files(tmp_path) == ['spring_train_10_0.pt']


def test_resume_only_generates_missing_chunks(tmp_path, monkeypatch, train10):
    calls = []
    integrate = sd._integrate

    def counting(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return integrate(*args, **kwargs)

    monkeypatch.setattr(sd, '_integrate', counting)
    # An interrupted run of another split size leaves chunks 0-2, which are
    # the same for every split size.
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path, num_systems=16)
    partial = tmp_path / 'partial' / 'spring_train_10_0'
    partial.mkdir()
    for c in (0, 2):
        os.replace(
            tmp_path / 'partial' / 'spring_train_16_0' / f'chunk_{c:05d}.pt',
            partial / f'chunk_{c:05d}.pt')
    # A chunk file of another configuration is regenerated, not trusted.
    torch.save({'meta': None}, partial / 'chunk_00001.pt')
    calls.clear()
    resumed = make(tmp_path, num_systems=10)
    assert len(calls) == 1  # Only chunk 1.
    assert torch.equal(resumed.trajectories, train10.trajectories)
    assert torch.equal(resumed.sys_params, train10.sys_params)
    assert all_files(tmp_path) == [
        os.path.join('partial', 'spring_train_16_0', 'chunk_00001.pt'),
        'spring_train_10_0.pt',
    ]


def test_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    save = torch.save

    def failing(obj, f, *args, **kwargs):
        f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', failing)
    with pytest.raises(OSError, match='disk full'):
        make(tmp_path)
    assert all_files(tmp_path) == []
    monkeypatch.setattr(torch, 'save', save)
    make(tmp_path)
    assert all_files(tmp_path) == ['spring_train_4_0.pt']


def test_nan_is_rejected(tmp_path, monkeypatch):
    integrate = sd._integrate
    monkeypatch.setattr(sd, '_integrate',
                        lambda *args: integrate(*args) * float('nan'))
    with pytest.raises(ValueError, match='NaN'):
        make(tmp_path / 'a')
    monkeypatch.setattr(sd, '_integrate', integrate)
    ds = make(tmp_path / 'b')
    data = torch.load(ds.path, weights_only=True)
    data['trajectories'][3, 7] = float('nan')
    torch.save(data, ds.path)
    with pytest.raises(ValueError, match='NaN'):
        make(tmp_path / 'b')


# Items ####################################################################


@pytest.mark.parametrize('chunk_len,num_chunks', [(5, 99), (100, 4),
                                                  (1, 499), (499, 1)])
def test_chunks(train10, chunk_len, num_chunks):
    ds = make(train10.root, chunk_len=chunk_len, num_systems=10)
    assert ds.num_chunks == num_chunks
    assert len(ds) == 10 * num_chunks
    assert ds.chunk_index.shape == (len(ds), 2)
    for idx in [0, 1, num_chunks - 1, num_chunks, len(ds) - 1, -1]:
        system, chunk = divmod(idx % len(ds), num_chunks)
        item = ds[idx]
        assert isinstance(item, SpringSample)
        assert ds.chunk_index[idx].tolist() == [system, chunk]
        start = chunk * chunk_len
        assert torch.equal(
            item.z, train10.trajectories[system,
                                         start:start + chunk_len + 1])
        assert torch.equal(item.z0, item.z[0])
        assert torch.equal(item.ts, train10.ts[:chunk_len + 1])
        assert torch.equal(item.sys_params, train10.sys_params[system])
    with pytest.raises(IndexError):
        ds[len(ds)]


@pytest.mark.parametrize('states,num_chunks', [(5, 100), (100, 5)])
def test_the_papers_non_overlapping_chunks_of_states(train10, states,
                                                      num_chunks):
    r"""The paper's protocol: each trajectory cut into chunks of `states`
    states that do not overlap, one drawn per system."""
    ds = make(train10.root, chunk_len=states - 1, chunk_stride=states,
              num_systems=10)
    assert ds.num_chunks == num_chunks and len(ds) == 10 * num_chunks
    for chunk in (0, 1, num_chunks - 1):
        item = ds[chunk]
        assert item.z.size(0) == states
        assert torch.equal(item.z, train10.trajectories[
            0, chunk * states:(chunk + 1) * states])
    one = make(train10.root, chunk_len=states - 1, chunk_stride=states,
               chunks_per_system=1, num_systems=10)
    assert len(one) == 10
    assert not (one.chunk_index[:, 1] == one.chunk_index[0, 1]).all()
    # The default stride keeps the existing (shared-boundary) chunks.
    default = make(train10.root, chunks_per_system=3, num_systems=10)
    same = make(train10.root, chunks_per_system=3, chunk_stride=5,
                num_systems=10)
    assert torch.equal(default.chunk_index, same.chunk_index)


def test_dataloader_batches(train10):
    loader = DataLoader(train10, batch_size=16)
    batch = next(iter(loader))
    assert isinstance(batch, SpringSample)
    assert batch.z0.shape == (16, 2, 6, 2)
    assert batch.ts.shape == (16, 6)
    assert batch.sys_params.shape == (16, 6, 2)
    assert batch.z.shape == (16, 6, 2, 6, 2)
    assert batch.z.dtype == torch.float64
    assert (batch.ts == batch.ts[:1]).all()
    assert sum(b.z.size(0) for b in loader) == len(train10)


def test_nested_subsets(train10):
    small = make(train10.root, num_systems=10, n_train=3)
    large = make(train10.root, num_systems=10, n_train=7)
    assert small.num_systems == 3 and len(small) == 3 * 99
    assert torch.equal(large.trajectories[:3], small.trajectories)
    assert torch.equal(train10.sys_params[:7], large.sys_params)
    for idx in (0, 150, len(small) - 1):
        assert torch.equal(small[idx].z, train10[idx].z)
    # Loaded from the cache of the full split.
    assert all_files(train10.root) == ['spring_train_10_0.pt']


def test_chunks_per_system(train10):
    root = train10.root
    ds = make(root, chunks_per_system=3, num_systems=10)
    assert len(ds) == 30
    system, chunk = ds.chunk_index.view(10, 3, 2).unbind(-1)
    assert (system == torch.arange(10).view(-1, 1)).all()
    assert (chunk[:, 1:] > chunk[:, :-1]).all()  # Sorted, distinct.
    assert chunk.min() >= 0 and chunk.max() < 99
    assert not (chunk == chunk[:1]).all()  # Not the same for every system.
    again = make(root, chunks_per_system=3, num_systems=10)
    assert torch.equal(again.chunk_index, ds.chunk_index)
    nested = make(root, chunks_per_system=3, n_train=4, num_systems=10)
    assert torch.equal(nested.chunk_index, ds.chunk_index[:12])
    s, c = ds.chunk_index[7].tolist()
    assert torch.equal(ds[7].z, train10[s * 99 + c].z)
    full = make(root, chunks_per_system=99, num_systems=10)
    assert torch.equal(full.chunk_index, train10.chunk_index)


def test_dtype(train10):
    ds = make(train10.root, dtype=torch.float32, num_systems=10)
    assert ds.trajectories.dtype == torch.float32
    item = ds[5]
    assert all(t.dtype == torch.float32 for t in item)
    torch.testing.assert_close(item.z, train10[5].z.float())


@pytest.mark.parametrize('kwargs,match', [
    (dict(split='training'), "'split'"),
    (dict(n_train=11), "'n_train'"),
    (dict(n_train=0), "'n_train'"),
    (dict(n_train=2.0), "'n_train'"),
    (dict(n_train=5, split='val'), "'n_train'"),
    (dict(chunk_len=0), "'chunk_len'"),
    (dict(chunk_len=500), "'chunk_len'"),
    (dict(chunk_len=True), "'chunk_len'"),
    (dict(chunks_per_system=0), "'chunks_per_system'"),
    (dict(chunk_len=100, chunks_per_system=5), "'chunks_per_system'"),
    (dict(num_systems=0), "'num_systems'"),
    (dict(num_systems={'train': 10, 'tests': 5}), "'num_systems'"),
    (dict(substeps=0), "'substeps'"),
    (dict(num_particles=0), "'num_particles'"),
    (dict(dtype=torch.long), "'dtype'"),
])
def test_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(tmp_path, **kwargs)
    assert all_files(tmp_path) == []


def test_num_systems_per_split(tmp_path, monkeypatch):
    monkeypatch.setattr(SpringDynamics, 'default_num_systems',
                        {'train': 5, 'val': 2, 'test': 3})
    counts = {'train': 4}
    sizes = {split: SpringDynamics(tmp_path, split=split, log=False,
                                   num_systems=counts).num_systems
             for split in SpringDynamics.splits}
    assert sizes == {'train': 4, 'val': 2, 'test': 3}
    assert make(tmp_path, n_train=3, num_systems=counts).num_systems == 3


def test_spring_symmetries_give_trajectories_of_the_same_systems():
    r"""Rotated, reflected, time-reversed and scaled chunks are, up to the
    integrator's error, what RK4 integrates from their first state."""
    gen = torch.Generator().manual_seed(0)
    B, N = 64, 6
    z0 = torch.randn(B, 2, N, 2, generator=gen, dtype=torch.float64) * 0.5
    sys_params = torch.rand(B, N, 2, generator=gen, dtype=torch.float64) + 0.5
    ts = torch.linspace(0, 4 * 5 / 499, 5, dtype=torch.float64)

    def integrate(z0):
        z = odeint(lambda t, z: spring_vector_field(z, sys_params), z0, ts,
                   method='rk4')
        return z.transpose(0, 1)  # [B, L, 2, N, D]

    z = integrate(z0)
    out = spring_symmetries(z, generator=torch.Generator().manual_seed(1))
    # RK4 is not time-symmetric: reversed chunks differ by its error.
    torch.testing.assert_close(integrate(out[:, 0]), out, atol=1e-7, rtol=0)
    torch.testing.assert_close(spring_hamiltonian(out, sys_params[:, None]),
                               spring_hamiltonian(z, sys_params[:, None]))
    # Each kind of draw occurs: rotations with and without a reflection...
    rotated = spring_symmetries(z, reverse=False,
                                generator=torch.Generator().manual_seed(2))
    maps = torch.linalg.lstsq(z[:, 0, 0], rotated[:, 0, 0]).solution
    torch.testing.assert_close(maps.transpose(1, 2) @ maps,
                               torch.eye(2, dtype=maps.dtype).expand(B, 2, 2))
    det = torch.linalg.det(maps)
    assert (det < 0).any() and (det > 0).any()
    # ... and chunks kept or reversed with their momenta negated.
    kept = spring_symmetries(z, rotate=False,
                             generator=torch.Generator().manual_seed(3))
    back = z.flip(1) * torch.tensor([1.0, -1.0]).view(2, 1, 1)
    same = (kept == z).flatten(1).all(1)
    assert same.any() and (~same).any()
    assert torch.equal(kept[~same], back[~same])
    # Scalings: the dynamics are linear, so exact up to rounding.
    scaled = spring_symmetries(z, rotate=False, reverse=False, max_scale=3,
                               generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(integrate(scaled[:, 0]), scaled, atol=1e-12,
                               rtol=0)
    factor = scaled[:, 0, 0, 0, 0] / z[:, 0, 0, 0, 0]
    torch.testing.assert_close(scaled, z * factor.view(B, 1, 1, 1, 1))
    assert 1 / 3 <= factor.min() < 0.6 and 1.7 < factor.max() <= 3
    # Negative controls: rotating or scaling the positions alone is not a
    # symmetry.
    for out in (rotated, scaled):
        q_only = z.clone()
        q_only[:, :, 0] = out[:, :, 0]
        assert (integrate(q_only[:, 0]) - q_only).abs().max() > 1e-3
    with pytest.raises(ValueError, match='trajectories'):
        spring_symmetries(z[0])
    with pytest.raises(ValueError, match="'max_scale' must be at least 1"):
        spring_symmetries(z, max_scale=0.5)
