import math
from copy import deepcopy

import pytest
import torch
from torch_geometric.data import Batch, Data

from torch_lie.datasets import spring_hamiltonian, spring_vector_field
from torch_lie.groups import SE2, T, Trivial
from torch_lie.nn.models import (
    Dynamics,
    HamiltonianDynamics,
    LiePotential,
    MLPDynamics,
    MLPPotential,
    SeparableHamiltonian,
)
from torch_lie.testing import assert_equivariant
from torch_lie.transforms import Lift
from torch_lie.transforms.lift import trusted_positions


def springs(batch=4, n=6, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, 2, n, 2, generator=g, dtype=dtype) * 0.5
    sys_params = torch.rand(batch, n, 2, generator=g, dtype=dtype)
    sys_params = sys_params * torch.tensor([3.0, 5.0], dtype=dtype) + 0.1
    return z, sys_params


class SpringPotential(torch.nn.Module):
    def forward(self, q, sys_params):
        z = torch.stack([q, torch.zeros_like(q)], dim=1)
        return spring_hamiltonian(z, sys_params)


def small_potential(group='T2', num_samples=1, **kwargs):
    torch.manual_seed(0)
    kwargs = {'hidden_channels': 16, 'num_layers': 2, 'heads': 2,
              'kernel_dim': 8, **kwargs}
    return LiePotential(2, Lift(group, num_samples), **kwargs).double()


def test_known_hamiltonian_gives_true_vector_field():
    z, sys_params = springs()
    full = HamiltonianDynamics(_Wrap(spring_hamiltonian))
    separable = HamiltonianDynamics(SeparableHamiltonian(SpringPotential()))
    expected = spring_vector_field(z, sys_params)
    torch.testing.assert_close(full(z, sys_params), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(separable(z, sys_params), expected, atol=1e-12,
                               rtol=0)
    # A roll-out of the true Hamiltonian conserves it.
    ts = torch.linspace(0, 1, 401, dtype=torch.float64)
    traj = full.rollout(z, ts, sys_params)
    energy = spring_hamiltonian(traj, sys_params[:, None])
    drift = (energy - energy[:, :1]).abs() / energy[:, :1].abs()
    assert drift.max() < 1e-5


class _Wrap(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, z, sys_params):
        return self.fn(z, sys_params)


def test_field_and_parameter_gradients_match_autograd():
    z, sys_params = springs()
    hamiltonian = SeparableHamiltonian(small_potential())
    dynamics = HamiltonianDynamics(hamiltonian)
    z_ref = z.clone().requires_grad_()
    grad, = torch.autograd.grad(hamiltonian(z_ref, sys_params).sum(), z_ref,
                                create_graph=True)
    ref = torch.stack([grad[:, 1], -grad[:, 0]], dim=1)
    out = dynamics(z, sys_params)
    torch.testing.assert_close(out, ref, atol=1e-13, rtol=0)
    weights = torch.randn_like(out)
    params = list(hamiltonian.parameters())
    got = torch.autograd.grad((out * weights).sum(), params, allow_unused=True)
    want = torch.autograd.grad((ref * weights).sum(), params, allow_unused=True)
    for a, b in zip(got, want):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    with torch.no_grad():
        evaluated = dynamics(z, sys_params)
    assert not evaluated.requires_grad
    torch.testing.assert_close(evaluated, ref.detach())


@pytest.mark.parametrize('group,num_samples', [
    ('T2', 1), ('SE2-C4', 1), ('SE2', 3),
])
def test_dense_and_sparse_kernels_agree(group, num_samples):
    r"""The potential of equal-size systems (lifted as [B, N, d] with full
    attention) runs the dense kernel by default; the sparse kernel gives
    the same energies and the same gradients in the positions, to float64
    rounding, and so does the model on a PyG batch of the systems."""
    z, sys_params = springs()
    potential = small_potential(group, num_samples)
    model = potential.transformer
    q = z[:, 0]
    results = {}
    for kernel in ('auto', 'dense', 'sparse'):
        model.kernel = kernel
        q_ = q.clone().requires_grad_()
        energy = potential(q_, sys_params,
                           generator=torch.Generator().manual_seed(1))
        grad, = torch.autograd.grad(energy.sum(), q_)
        results[kernel] = energy.detach(), grad
    model.kernel = 'auto'
    assert results['dense'][1].abs().max() > 1e-3
    assert all(torch.equal(a, b)
               for a, b in zip(results['auto'], results['dense']))
    for a, b in zip(results['dense'], results['sparse']):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)

    # The same systems as a collated batch of point clouds, lifted by the
    # model itself (with the same samples: one generator draw per batch).
    B, N, d = q.shape
    batch = Batch.from_data_list([Data(pos=q[b], x=sys_params[b])
                                  for b in range(B)])
    lifted = model.lift.lift(batch.pos, batch.x, batch.batch, B,
                             generator=torch.Generator().manual_seed(1))
    assert lifted.num_graphs == B
    for kernel in ('dense', 'sparse'):
        model.kernel = kernel
        torch.testing.assert_close(model(lifted).view(B), results['sparse'][0],
                                   atol=1e-10, rtol=0)
        if model.group.deterministic:
            torch.testing.assert_close(model(batch).view(B),
                                       results['sparse'][0], atol=1e-10,
                                       rtol=0)
    model.kernel = 'auto'


def potential_of_points(potential, sys_params):
    def fn(q):
        return potential.to(q.dtype)(q[None], sys_params[None].to(q.dtype))
    return fn


def test_t2_potential_is_translation_invariant():
    z, sys_params = springs()
    errors = assert_equivariant(potential_of_points(small_potential('T2'),
                                                    sys_params[0]),
                                z[0, 0], T(2), num_elements=6)
    assert errors[torch.float64] < 1e-9
    with pytest.raises(AssertionError, match='Not invariant'):
        assert_equivariant(potential_of_points(small_potential(Trivial(2)),
                                               sys_params[0]), z[0, 0], T(2))


def test_c4_potential_is_invariant_to_quarter_turns():
    z, sys_params = springs()
    group = SE2(num_rotations=4)
    fn = potential_of_points(small_potential(group), sys_params[0])
    errors = assert_equivariant(fn, z[0, 0], group, num_elements=6)
    assert errors[torch.float64] < 1e-9
    turn = group.exp(torch.tensor([[math.pi / 3, 0.5, 0.0]], dtype=torch.float64))
    with pytest.raises(AssertionError):
        assert_equivariant(fn, z[0, 0], group, elements=turn)


@pytest.mark.parametrize('model', ['lie', 'fc', 'hfc'])
def test_rollout_shapes(model):
    z, sys_params = springs()
    dynamics = {
        'lie': lambda: HamiltonianDynamics(SeparableHamiltonian(small_potential())),
        'fc': lambda: MLPDynamics(6, 2, 2, hidden_channels=32),
        'hfc': lambda: HamiltonianDynamics(SeparableHamiltonian(
            MLPPotential(6, 2, 2, 32))),
    }[model]().double()
    ts = torch.linspace(0, 0.05, 6, dtype=torch.float64)
    traj = dynamics.rollout(z, ts, sys_params)
    assert traj.shape == (4, 6, 2, 6, 2)
    assert torch.equal(traj[:, 0], z)


def test_baselines_are_the_originals_and_translation_invariant():
    r"""FC and HFC as the original implementation's: their parameter
    counts, and centred positions make them invariant to translations
    (the potential and the vector field)."""
    fc = MLPDynamics(6, 2, 2).double()
    potential = MLPPotential(6, 2, 2).double()
    assert sum(p.numel() for p in fc.parameters()) == 213_016
    assert sum(p.numel() for p in potential.parameters()) == 204_033
    z, sys_params = springs()
    shift = torch.tensor([3.0, -1.5], dtype=torch.float64)
    moved = z.clone()
    moved[:, 0] += shift
    torch.testing.assert_close(fc(moved, sys_params), fc(z, sys_params))
    torch.testing.assert_close(potential(moved[:, 0], sys_params),
                               potential(z[:, 0], sys_params))
    # Negative control: a quarter turn of the positions changes the MLP's
    # potential (it has no rotation invariance built in).
    turned = torch.stack([-z[:, 0, ..., 1], z[:, 0, ..., 0]], dim=-1)
    assert not torch.allclose(potential(turned, sys_params),
                              potential(z[:, 0], sys_params))


def test_rollout_errors():
    z, sys_params = springs()
    dynamics = MLPDynamics(6, 2, 2).double()
    ts = torch.linspace(0, 0.05, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"'z' must have shape \[B, 2, N, d\]"):
        dynamics.rollout(z[:, 0], ts, sys_params)
    with pytest.raises(ValueError, match="'sys_params' must have shape"):
        dynamics.rollout(z, ts, sys_params[:, :5])
    bad = z.clone()
    bad[1, 0, 2, 1] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        dynamics.rollout(bad, ts, sys_params)
    with pytest.raises(ValueError, match="'ts'"):
        dynamics.rollout(z, ts[None], sys_params)


class _Explosive(torch.nn.Module):
    r"""A LieTransformer potential plus :math:`-|q|^4`: trajectories reach
    infinity in finite time."""
    def __init__(self, potential):
        super().__init__()
        self.potential = potential

    def forward(self, q, sys_params):
        energy = self.potential(q, sys_params)
        return energy - 1e3 * q.pow(2).sum((-2, -1)).pow(2).view_as(energy)


def test_a_rollout_that_blows_up_turns_non_finite():
    r"""A valid initial state whose dynamics diverge gives non-finite states
    from some step on (an infinite error to report), not an exception from
    the lift's check of the positions it meets."""
    z, sys_params = springs(batch=2)
    dynamics = HamiltonianDynamics(SeparableHamiltonian(
        _Explosive(small_potential())))
    ts = torch.linspace(0, 5.0, 40, dtype=torch.float64)
    with torch.no_grad():
        traj = dynamics.rollout(z, ts, sys_params)
    assert traj[:, 0].isfinite().all()
    assert not traj[:, -1].isfinite().all()
    # A non-finite state passed directly is still refused.
    with pytest.raises(ValueError, match='NaN or infinite'):
        dynamics(traj[:, -1], sys_params)


def test_rollout_errors_against_trajectories():
    r""":meth:`Dynamics.rollout_errors`: squared errors per system and time
    of a loader's batches (the true dynamics score zero), infinite once a
    roll-out blew up."""
    from torch_lie.datasets import spring_vector_field

    class TrueSprings(Dynamics):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(()))

        def forward(self, z, sys_params):
            return spring_vector_field(z, sys_params)

    z0, sys_params = springs(batch=5)
    ts = torch.linspace(0, 0.04, 5, dtype=torch.float64)
    with torch.no_grad():
        z = TrueSprings().rollout(z0, ts, sys_params)
    batches = [(z0[:3], ts.expand(3, -1), sys_params[:3], z[:3]),
               (z0[3:], ts.expand(2, -1), sys_params[3:], z[3:])]
    errors, pred = TrueSprings().rollout_errors(batches)
    assert errors.shape == (5, 5) and pred.shape == z.shape
    assert errors.max() < 1e-28
    wrong = [(a, t, s, b + 0.1) for a, t, s, b in batches]
    errors, _ = TrueSprings().rollout_errors(wrong)
    torch.testing.assert_close(errors, torch.full((5, 5), 0.01,
                                                  dtype=torch.float64))
    explosive = HamiltonianDynamics(SeparableHamiltonian(
        _Explosive(small_potential()))).double()
    long = torch.linspace(0, 5.0, 40, dtype=torch.float64)
    errors, _ = explosive.rollout_errors(
        [(z0[:2], long.expand(2, -1), sys_params[:2],
          torch.zeros(2, 40, *z0.shape[1:], dtype=torch.float64))])
    assert errors[:, 0].isfinite().all() and errors[:, -1].isinf().all()
    assert not explosive.training  # evaluation mode


def test_training_reduces_rollout_loss():
    z, sys_params = springs(batch=8, seed=1)
    sys_params = sys_params * torch.tensor([1.0, 0.2], dtype=torch.float64)
    ts = torch.linspace(0, 0.1, 6, dtype=torch.float64)
    truth = HamiltonianDynamics(_Wrap(spring_hamiltonian)).rollout(z, ts,
                                                                   sys_params)
    dynamics = HamiltonianDynamics(SeparableHamiltonian(small_potential()))
    optimizer = torch.optim.Adam(dynamics.parameters(), lr=3e-2)
    losses = []
    for _ in range(20):
        loss = (dynamics.rollout(z, ts, sys_params) - truth).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0]


@pytest.mark.parametrize('lift', [Lift('T2'), Lift('SE2', num_samples=2)])
def test_vector_field_compiles_as_one_graph(lift):
    r"""The lift, the lifted data and the model trace without a graph break
    (a break inside torch.func.grad makes the whole field run eagerly)."""
    potential = LiePotential(2, lift, hidden_channels=8, num_layers=1,
                             heads=2, kernel_dim=4)
    dynamics = HamiltonianDynamics(SeparableHamiltonian(potential))
    z, sys_params = springs(batch=3, dtype=torch.float32)
    field = torch.compile(type(dynamics)._vector_field, fullgraph=True,
                          backend='eager')
    with trusted_positions():
        out = field(dynamics, z, sys_params)
    assert out.shape == z.shape and torch.isfinite(out).all()


def test_compiled_vector_field_matches_eager():
    torch.manual_seed(0)
    potential = LiePotential(2, Lift('T2'), hidden_channels=8, num_layers=1,
                             heads=2, kernel_dim=4)
    eager = HamiltonianDynamics(SeparableHamiltonian(potential))
    compiled = HamiltonianDynamics(SeparableHamiltonian(potential), compile=True)
    z, sys_params = springs(batch=3, dtype=torch.float32)
    ts = torch.linspace(0, 0.05, 3)
    grads = []
    for dynamics in (compiled, eager):
        potential.zero_grad()
        traj = dynamics.rollout(z, ts, sys_params)
        traj.pow(2).sum().backward()
        grads.append([p.grad.clone() for p in potential.parameters()
                      if p.grad is not None])
        grads.append(traj.detach())
    torch.testing.assert_close(grads[1], grads[3], atol=1e-5, rtol=1e-5)
    for a, b in zip(grads[0], grads[2]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)

    # A copy of the compiled model computes with its own weights.
    copy = deepcopy(compiled)
    with torch.no_grad():
        for p in copy.parameters():
            p.mul_(2)
        field = copy(z, sys_params)
        with copy.eager():
            torch.testing.assert_close(field, copy(z, sys_params), atol=1e-5,
                                       rtol=1e-5)
        assert not torch.allclose(field, compiled(z, sys_params))


def test_eager_block_skips_compilation_and_restores_it():
    potential = LiePotential(2, Lift('T2'), hidden_channels=8, num_layers=1,
                             heads=2, kernel_dim=4)
    dynamics = HamiltonianDynamics(SeparableHamiltonian(potential),
                                   compile=True)
    z, sys_params = springs(batch=2, dtype=torch.float32)
    with torch.no_grad(), dynamics.eager() as model:
        assert model is dynamics and not dynamics.compile
        model(z, sys_params)
    assert dynamics._compiled is None  # nothing was compiled
    assert dynamics.compile
    fc = MLPDynamics(6, 2, 2, 8, 2)  # compiles nothing: the block is a no-op
    with dynamics.eager(), fc.eager() as same:
        assert same is fc
    try:
        with dynamics.eager():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert dynamics.compile


def test_a_copy_computes_with_its_own_weights():
    dynamics = HamiltonianDynamics(SeparableHamiltonian(LiePotential(
        2, Lift('T2'), hidden_channels=8, num_layers=1, heads=2, kernel_dim=4)))
    copy = deepcopy(dynamics)
    with torch.no_grad():
        for p in copy.parameters():
            p.mul_(2)
    z, sys_params = springs(batch=2, dtype=torch.float32)
    assert not torch.allclose(copy(z, sys_params), dynamics(z, sys_params))


@pytest.mark.parametrize('mass', [0.0, -1.0, float('nan')])
def test_roll_out_refuses_masses_that_are_not_positive(mass):
    r"""A zero, negative or NaN mass would give NaN roll-outs: refused by
    name before integrating."""
    z, sys_params = springs()
    model = HamiltonianDynamics(SeparableHamiltonian(SpringPotential()))
    ts = torch.linspace(0, 0.1, 3, dtype=z.dtype)
    assert model.rollout(z, ts, sys_params).isfinite().all()
    sys_params[1, 2, 0] = mass
    with pytest.raises(ValueError, match='masses .* positive and finite'):
        model.rollout(z, ts, sys_params)
