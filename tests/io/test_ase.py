from functools import partial

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk, molecule
from ase.io import write
from ase.md.verlet import VelocityVerlet
from torch_geometric.data import Batch

from torch_lie.datasets.qm9 import qm9_features
from torch_lie.groups import SO3
from torch_lie.io.ase import (
    LieCalculator,
    atoms_to_data,
    data_to_atoms,
    read_molecule,
)
from torch_lie.nn import LieTransformer
from torch_lie.transforms import Lift

MOLECULES = ['CH3CH2OH', 'C6H6', 'H2O', 'CH3NO2', 'CH4']


@pytest.fixture(autouse=True)
def one_thread():
    r"""The models here are tiny: more threads only add synchronisation
    (25x slower with 2 threads on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_model(lift, seed=0, scale=1.0, hidden=16, in_channels=15,
                **kwargs):
    r"""An untrained float64 LieTransformer energy (lifting with
    :obj:`lift`, a :class:`Lift` or a group name), :obj:`scale` times its
    output (the output layer scaled, to make the forces of a realistic
    size, ~0.1 eV/Å): a plain model, as :class:`LieCalculator` takes it."""
    torch.manual_seed(seed)
    lift = lift if isinstance(lift, Lift) else Lift(lift)
    model = LieTransformer(in_channels, hidden, 1, lift=lift, num_layers=2,
                           heads=2, **kwargs)
    with torch.no_grad():
        model.head[-1].weight.mul_(scale)
        model.head[-1].bias.mul_(scale)
    return model.double()


def thermalise(atoms, temperature_K=300, seed=0):
    r"""Seeded Maxwell-Boltzmann momenta without net momentum."""
    rng = np.random.default_rng(seed)
    m = atoms.get_masses()[:, None]
    p = rng.standard_normal((len(atoms), 3)) * np.sqrt(
        m * units.kB * temperature_K)
    p -= m * (p.sum(0) / m.sum())
    atoms.set_momenta(p)


# ----------------------------------------------------------------------
# Conversions.
@pytest.mark.parametrize('name', MOLECULES)
def test_round_trip_molecules(name):
    atoms = molecule(name)
    data = atoms_to_data(atoms, dtype=torch.float64)
    assert data.pos.dtype == torch.float64 and data.pos.shape == (len(atoms), 3)
    assert data.z.dtype == torch.long
    assert 'cell' not in data and 'pbc' not in data  # no cell, not periodic
    back = data_to_atoms(data)
    assert np.array_equal(back.positions, atoms.positions)
    assert np.array_equal(back.numbers, atoms.numbers)
    assert not back.pbc.any() and back.cell.rank == 0

    data32 = atoms_to_data(atoms)  # float32 by default
    assert data32.pos.dtype == torch.float32
    assert np.allclose(data_to_atoms(data32).positions, atoms.positions,
                       atol=1e-6)


@pytest.mark.parametrize('crystal', [
    bulk('Cu', 'fcc', a=3.6),
    bulk('NaCl', 'rocksalt', a=5.64, cubic=True),
    bulk('Si', 'diamond', a=5.43) * (2, 1, 1),
])
def test_round_trip_periodic(crystal):
    data = atoms_to_data(crystal, dtype=torch.float64)
    assert data.cell.shape == (1, 3, 3) and data.pbc.shape == (1, 3)
    assert data.pbc.dtype == torch.bool and bool(data.pbc.all())
    back = data_to_atoms(data)
    assert np.array_equal(back.cell.array, crystal.cell.array)
    assert np.array_equal(back.pbc, crystal.pbc)
    assert np.array_equal(back.positions, crystal.positions)
    assert back.get_chemical_formula() == crystal.get_chemical_formula()

    # Cells and pbc batch along a new leading dimension.
    batch = Batch.from_data_list([data, data])
    assert batch.cell.shape == (2, 3, 3) and batch.pbc.shape == (2, 3)
    with pytest.raises(ValueError, match='batch of 2 graphs'):
        data_to_atoms(batch)
    assert np.array_equal(data_to_atoms(batch.get_example(1)).cell.array,
                          crystal.cell.array)


def test_cell_without_pbc_is_kept():
    atoms = molecule('H2O')
    atoms.center(vacuum=4.0)
    data = atoms_to_data(atoms)
    assert data.cell.shape == (1, 3, 3) and not bool(data.pbc.any())
    back = data_to_atoms(data)
    assert np.allclose(back.cell.array, atoms.cell.array)
    assert not back.pbc.any()


def test_features():
    atoms = molecule('CH3CH2OH')
    data = atoms_to_data(atoms, features=qm9_features, dtype=torch.float64)
    assert data.x.shape == (9, 15) and data.x.dtype == torch.float64
    assert torch.allclose(data.x, qm9_features(data.z, torch.float64))
    exact = atoms_to_data(atoms, partial(qm9_features, dtype=torch.float64),
                          dtype=torch.float64)
    assert torch.equal(exact.x, qm9_features(data.z, torch.float64))
    with pytest.raises(ValueError, match='Cu'):
        atoms_to_data(bulk('Cu'), features=qm9_features)
    with pytest.raises(ValueError, match='shape'):
        atoms_to_data(atoms, features=lambda z: z.float())
    with pytest.raises(TypeError):
        atoms_to_data(data)


def test_read_molecule(tmp_path):
    path = tmp_path / 'ethanol.xyz'
    write(path, molecule('CH3CH2OH'))
    atoms = read_molecule(path)
    assert atoms.get_chemical_formula() == 'C2H6O'
    assert np.allclose(atoms.positions, molecule('CH3CH2OH').positions)

    frames = tmp_path / 'frames.xyz'
    write(frames, [molecule('H2O'), molecule('CH4')])
    assert read_molecule(frames).get_chemical_formula() == 'CH4'
    assert len(read_molecule(frames, index=':')) == 2


@pytest.mark.parametrize('name,content', [
    ('garbage.xyz', b'this is not\na molecule\n'),
    ('noise.unknownext', bytes(range(256)) * 4),
    ('empty.xyz', b''),
])
def test_read_molecule_unreadable(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=name.replace('.', r'\.')):
        read_molecule(path)


def test_read_molecule_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.xyz'):
        read_molecule(tmp_path / 'missing.xyz')


# ----------------------------------------------------------------------
# The calculator.
def test_docstring_example():
    r"""The example of :class:`LieCalculator`'s docstring: an untrained T(3)
    model of featurised atoms gives real forces, and energy and forces
    change when the molecule is stretched."""
    model = LieTransformer(15, 32, 1, lift=Lift('T3'), num_layers=2)
    atoms = molecule('CH3CH2OH')
    atoms.calc = LieCalculator(model.double(), features=qm9_features)
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    assert np.isfinite(energy) and forces.shape == (9, 3)
    assert np.abs(forces).max() > 1e-6

    stretched = atoms.copy()
    stretched.positions = 1.5 * (atoms.positions - atoms.positions.mean(0))
    stretched.calc = atoms.calc
    assert abs(stretched.get_potential_energy() - energy) > 1e-9
    assert np.abs(stretched.get_forces() - forces).max() > 1e-9


def test_inputs_without_features_need_dot_product_attention():
    r"""Without a featuriser the atoms have no features: softmax attention
    over equal features is blind to the geometry, so the model refuses
    them and names the fix; dot-product attention sees the geometry."""
    atoms = molecule('CH3CH2OH')
    softmax = small_model('T3', in_channels=1)
    atoms.calc = LieCalculator(softmax)
    with pytest.raises(ValueError, match="attention='dot_product'"):
        atoms.get_potential_energy()

    atoms.calc = LieCalculator(small_model('T3', in_channels=1,
                                           attention='dot_product'))
    forces = atoms.get_forces()
    assert np.isfinite(atoms.get_potential_energy())
    assert np.abs(forces).max() > 1e-6


def test_calculator_matches_model_and_finite_differences():
    model = small_model('T3', scale=100.0)
    calc = LieCalculator(model, features=qm9_features)
    assert calc.dtype == torch.float64  # taken from the model
    atoms = molecule('CH3CH2OH')
    atoms.calc = calc
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    assert forces.shape == (9, 3) and forces.dtype == np.float64

    # The model on the point cloud, and on the data lifted beforehand by
    # its own lift (as a dataset's transform would).
    data = atoms_to_data(atoms, qm9_features, torch.float64)
    assert abs(float(model(data).detach()) - energy) < 1e-12
    assert abs(float(model(model.lift(data)).detach()) - energy) < 1e-12
    with pytest.raises(ValueError, match='lifted by'):
        model(Lift('T3', r=2.0)(data))

    # Central differences of the energy.
    eps, errors = 1e-5, []
    for i, k in [(0, 0), (2, 1), (8, 2)]:
        e = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[i, k] += sign * eps
            e.append(calc.energy_and_forces(moved)[0])
        errors.append(abs(-(e[0] - e[1]) / (2 * eps) - forces[i, k]))
    assert max(errors) < 1e-7 * max(1.0, np.abs(forces).max())


@pytest.mark.parametrize('lift,seed', [
    (Lift('T3'), None),
    (Lift('SE3', num_samples=2), 0),
    (Lift('T3', r=2.5), None),
], ids=['T3', 'SE3-2-samples', 'T3-radius'])
def test_dense_and_sparse_kernels_agree(lift, seed):
    r"""The energy and forces (gradients in the positions) of the dense
    kernel (batched products over the complete lifted graph) and the sparse
    one (edges) agree to float64 rounding; :obj:`kernel='auto'` picks the
    dense one for full attention, the sparse one for a radius."""
    model = small_model(lift, scale=100.0)
    calc = LieCalculator(model, features=qm9_features, seed=seed)
    atoms = molecule('CH3CH2OH')
    results = {}
    for kernel in ('auto', 'dense', 'sparse'):
        model.kernel = kernel
        if kernel == 'dense' and not lift.full_attention:
            with pytest.raises(ValueError, match='full attention'):
                calc.energy_and_forces(atoms)
            continue
        results[kernel] = calc.energy_and_forces(atoms)
    model.kernel = 'auto'
    e, f = results['sparse']
    assert np.abs(f).max() > 1e-2
    if lift.full_attention:
        assert abs(results['dense'][0] - e) < 1e-10
        assert np.abs(results['dense'][1] - f).max() < 1e-10
        auto = results['dense']
    else:
        auto = results['sparse']
    assert results['auto'][0] == auto[0]
    assert np.array_equal(results['auto'][1], auto[1])


def test_calculator_callable_interface():
    r"""Any callable Data -> energy: a harmonic pair potential, whose forces
    are known in closed form."""
    def energy(data):
        diff = data.pos[:, None] - data.pos[None]
        return 0.5 * (diff**2).sum() / 2

    atoms = molecule('H2O')
    atoms.calc = LieCalculator(energy, dtype=torch.float64)
    pos = atoms.positions
    expected = -(len(pos) * pos - pos.sum(0))
    assert np.allclose(atoms.get_forces(), expected, atol=1e-12)
    assert repr(atoms.calc).startswith('LieCalculator(energy, ')

    atoms.calc = LieCalculator(lambda data: data.pos.sum(0))
    with pytest.raises(ValueError, match='one energy'):
        atoms.get_potential_energy()
    atoms.calc = LieCalculator(lambda data: float(data.pos.detach().sum()))
    with pytest.raises(TypeError, match='tensor'):
        atoms.get_potential_energy()
    with pytest.raises(TypeError, match='callable'):
        LieCalculator(3.0)


def test_calculator_errors_and_state():
    with pytest.raises(ValueError, match='3D'):
        LieCalculator(small_model('SE2'))
    with pytest.raises(ValueError, match='floating-point'):
        LieCalculator(small_model('T3'), dtype=torch.long)
    with pytest.raises(TypeError, match='owns its lift'):
        LieCalculator(small_model('T3'), lift=Lift('SE3', num_samples=4))
    model = small_model('SE3')
    calc = LieCalculator(model, features=qm9_features, seed=3)
    assert 'lift=Lift(SE3()' in repr(calc)  # the model's, with its lift
    crystal = bulk('C', 'diamond', a=3.57)
    crystal.calc = calc
    with pytest.raises(NotImplementedError, match='periodic'):
        crystal.get_potential_energy()

    # A seeded calculation: reproducible, leaves the global random stream
    # and the model's training mode alone.
    model.train()
    state = torch.get_rng_state()
    atoms = molecule('CH3CH2OH')
    e1, f1 = calc.energy_and_forces(atoms)
    e2, f2 = calc.energy_and_forces(atoms)
    assert e1 == e2 and np.array_equal(f1, f2)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    # Unseeded: fresh Monte Carlo samples at every call.
    unseeded = LieCalculator(model, features=qm9_features)
    assert unseeded.energy_and_forces(atoms)[0] != \
        unseeded.energy_and_forces(atoms)[0]


@pytest.mark.parametrize('group,seed', [('T3', None), ('SE3', 0)])
def test_forces_translation_invariant_and_sum_to_zero(group, seed):
    calc = LieCalculator(small_model(group, scale=100.0),
                         features=qm9_features, seed=seed)
    atoms = molecule('CH3CH2OH')
    e, f = calc.energy_and_forces(atoms)
    assert np.abs(f).mean() > 1e-2  # forces of a real size
    moved = atoms.copy()
    moved.translate([3.0, -1.5, 7.25])
    e_moved, f_moved = calc.energy_and_forces(moved)
    assert abs(e - e_moved) < 1e-9
    assert np.abs(f - f_moved).max() < 1e-9
    # Invariance to translations: the forces sum to zero (Newton's 3rd law).
    assert np.abs(f.sum(0)).max() < 1e-12 * max(1.0, np.abs(f).max()) * 100


def test_se3_forces_rotate_exactly_with_left_multiplied_elements():
    r"""With the lifted elements left-multiplied by the rigid motion
    (rotation parts Q R instead of R), the SE(3) energy is the same and the
    forces rotate exactly."""
    model = small_model(Lift('SE3', num_samples=2), scale=100.0)
    se3 = model.group

    def energy_with(Q):
        r"""The model's energy of a lift of the positions (the same
        rotations R at every call, from a seeded generator) whose rotation
        parts are Q R: differentiable in the positions through the
        translations."""
        def energy(data):
            generator = torch.Generator().manual_seed(1)
            lifted = model.lift.lift(data.pos, data.x, generator=generator)
            g = se3.from_parts(Q @ se3.rotation(lifted.g),
                               se3.translation(lifted.g))
            lifted.g = g
            lifted.edge_attr = se3.edge_attr(g, lifted.edge_index, lifted.q)
            return model(lifted)
        return energy

    atoms = molecule('CH3CH2OH')
    eye = torch.eye(3, dtype=torch.float64)
    e, f = LieCalculator(energy_with(eye), features=qm9_features,
                         dtype=torch.float64).energy_and_forces(atoms)
    assert np.abs(f).max() > 1e-2
    # The model's own lift draws the same rotations from that generator.
    own = LieCalculator(
        lambda data: model(model.lift.lift(
            data.pos, data.x, generator=torch.Generator().manual_seed(1))),
        features=qm9_features, dtype=torch.float64)
    e_own, f_own = own.energy_and_forces(atoms)
    assert e_own == e and np.array_equal(f_own, f)

    h = se3.sample(3, generator=torch.Generator().manual_seed(2),
                   dtype=torch.float64)
    for g in h:
        Q = se3.rotation(g)
        moved = atoms.copy()
        moved.positions = (se3.act(g, torch.tensor(atoms.positions))).numpy()
        calc = LieCalculator(energy_with(Q), features=qm9_features,
                             dtype=torch.float64)
        e_moved, f_moved = calc.energy_and_forces(moved)
        assert abs(e - e_moved) < 1e-9
        assert np.abs(f_moved - f @ Q.numpy().T).max() < 1e-9
        # Negative control: the unrotated elements give other forces.
        _, f_plain = own.energy_and_forces(moved)
        assert np.abs(f_plain - f @ Q.numpy().T).max() > 1e-3


def test_se3_forces_rotate_in_distribution():
    r"""With fresh random lifts, the mean forces of a rotated molecule are
    the rotated mean forces (and, as a negative control, not the unrotated
    ones)."""
    calc = LieCalculator(small_model(Lift('SE3', num_samples=4), scale=100.0,
                                     hidden=8),
                         features=qm9_features)
    atoms = molecule('CH3CH2OH')
    Q = SO3().sample(1, generator=torch.Generator().manual_seed(5),
                     dtype=torch.float64)[0].numpy()
    moved = atoms.copy()
    moved.positions = atoms.positions @ Q.T
    torch.manual_seed(0)
    draws = 64
    f = np.stack([calc.energy_and_forces(atoms)[1] for _ in range(draws)])
    g = np.stack([calc.energy_and_forces(moved)[1] for _ in range(draws)])
    g_back = g @ Q  # rotate the forces of the moved molecule back

    def z_score(a, b):
        se = np.sqrt((a.var(0, ddof=1) + b.var(0, ddof=1)) / draws)
        return np.abs(a.mean(0) - b.mean(0)) / np.maximum(se, 1e-12)

    assert z_score(f, g_back).max() < 5.0  # measured: 1.7
    assert z_score(f, g).max() > 8.0  # unrotated forces differ (18)


def run_md(atoms, calc, timestep_fs, steps):
    atoms = atoms.copy()
    atoms.calc = calc
    thermalise(atoms)
    dyn = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    energies = []
    dyn.attach(lambda: energies.append((atoms.get_potential_energy(),
                                        atoms.get_kinetic_energy())))
    dyn.run(steps)
    return np.array(energies)


def energy_errors(calc):
    r"""Total energy error of velocity Verlet on ethanol over 10 fs at two
    time steps, relative to the energy exchanged between potential and
    kinetic energy."""
    atoms = molecule('CH3CH2OH')
    coarse = run_md(atoms, calc, 0.25, 40)
    fine = run_md(atoms, calc, 0.125, 80)
    exchanged = np.ptp(coarse[:, 0])
    errors = [np.abs(e.sum(1) - e.sum(1)[0]).max() for e in (coarse, fine)]
    return exchanged, errors[0] / exchanged, errors[0] / errors[1]


class WrongForces(LieCalculator):
    def energy_and_forces(self, atoms):
        energy, forces = super().energy_and_forces(atoms)
        return energy, 1.05 * forces


def test_md_conserves_energy():
    r"""Velocity Verlet on ethanol with an untrained T(3) LieTransformer
    potential (float64, forces ~0.1 eV/Å): over 10 fs, potential and kinetic
    energy exchange 0.15 eV while the total drifts by 4e-5 of that; halving
    the time step cuts the error fourfold (measured 4.00), the second order
    of Verlet, which holds only for forces that are the exact gradient of
    the energy: forces 5% off give an error of 4e-2 that does not shrink."""
    args = (small_model('T3', scale=100.0), qm9_features)
    exchanged, relative, order = energy_errors(LieCalculator(*args))
    assert exchanged > 0.1  # the potential does real work
    assert relative < 2e-4
    assert 3.5 < order < 4.5

    _, relative, order = energy_errors(WrongForces(*args))
    assert relative > 1e-2 and order < 1.5
