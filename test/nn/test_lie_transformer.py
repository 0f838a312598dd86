import math

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from torch_lie.groups import SE2, SE3, SO2, SO3, T, Trivial, group_resolver
from torch_lie.nn import LieTransformer
from torch_lie.testing import assert_equivariant, assert_invariant_in_distribution
from torch_lie.transforms import Lift

ALL_GROUPS = ['T2', 'T3', 'SO2', 'SE2', 'SE2-C4', 'SO3', 'SE3', 'SO3-matrix',
              'SE3-matrix', 'SE2-matrix']


def make_model(group, in_channels=5, **kwargs):
    torch.manual_seed(0)
    kwargs = {'num_layers': 2, 'heads': 2, 'kernel_dim': 8, **kwargs}
    return LieTransformer(in_channels, 16, 3, group, **kwargs).double()


def point_function(model, lift, x):
    r"""The model's output as a function of the points (lifted inside)."""
    def fn(pos):
        lifted = lift.lift(pos)
        m = model.to(pos.dtype)
        return m(x.to(pos.dtype)[lifted.point_index], lifted.edge_index,
                 lifted.edge_attr)
    return fn


def element_function(model, group, lifted, x):
    r"""The model's output as a function of fixed lifted elements."""
    def fn(g):
        edge_attr = group.edge_attr(g, lifted.edge_index, lifted.q.to(g.dtype))
        return model.to(g.dtype)(x.to(g.dtype)[lifted.point_index],
                                 lifted.edge_index, edge_attr)
    return fn


def test_output_shape_pooling_and_repr(ethanol):
    pos, x = ethanol
    data = Lift('SE3', num_samples=2, r=2.0)(Data(pos=pos, x=x))
    for pool in ('mean', 'sum', 'max'):
        model = make_model('SE3', pool=pool)
        out = model(data.x, data.edge_index, data.edge_attr)
        assert out.shape == (1, 3) and torch.isfinite(out).all()
    assert repr(model) == 'LieTransformer(5, 16, 3, group=SE3(), num_layers=2)'
    with pytest.raises(ValueError, match='pool'):
        LieTransformer(5, 16, 3, 'SE3', pool='median')


@pytest.mark.parametrize('name', ['T3', 'SE3'])
def test_batch_equals_single_graphs(real_molecule, name):
    lift = Lift(name, num_samples=1 if name == 'T3' else 2, r=2.5)
    torch.manual_seed(1)
    datas = [lift(Data(pos=p, x=x)) for p, x in
             map(real_molecule, ('CH3CH2OH', 'H2O', 'C6H6', 'CH4'))]
    model = make_model(name)
    batch = next(iter(DataLoader(datas, batch_size=4)))
    out = model(batch.x, batch.edge_index, batch.edge_attr, batch.batch,
                num_graphs=4)
    single = torch.cat([model(d.x, d.edge_index, d.edge_attr) for d in datas])
    torch.testing.assert_close(out, single, atol=1e-12, rtol=1e-12)


def test_permutation_invariance(ethanol):
    pos, x = ethanol
    model = make_model('T3')
    fn = point_function(model, Lift('T3', r=2.0), x)
    perm = torch.randperm(pos.size(0))
    out = fn(pos)
    perm_out = point_function(model, Lift('T3', r=2.0), x[perm])(pos[perm])
    torch.testing.assert_close(perm_out, out, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize('r', [None, 2.0])
def test_translation_invariance_t3(ethanol, r):
    pos, x = ethanol
    errors = assert_equivariant(point_function(make_model('T3'), Lift('T3', r=r), x),
                                pos, T(3))
    assert errors[torch.float64] < 1e-9 and errors[torch.float32] < 1e-4


def test_negative_control_fails(ethanol):
    r"""The same architecture on absolute positions is not invariant, and the
    checker says so; nor is the T(3) model invariant to rotations."""
    pos, x = ethanol
    fn = point_function(make_model(Trivial(3)), Lift(Trivial(3)), x)
    with pytest.raises(AssertionError, match='Not invariant'):
        assert_equivariant(fn, pos, T(3))
    fn = point_function(make_model('T3'), Lift('T3'), x)
    with pytest.raises(AssertionError, match='Not invariant'):
        assert_equivariant(fn, pos, SE3())


@pytest.mark.parametrize('name', ['SE2-C4', 'SO2', 'T2'])
def test_exact_invariance_of_deterministic_lifts_2d(benzene_2d, name):
    pos, x = benzene_2d
    group = group_resolver(name)
    errors = assert_equivariant(
        point_function(make_model(group), Lift(group, r=2.6), x), pos, group,
        num_elements=6)
    # Exact up to rounding: the SE2-C4 pair embedding snaps relative angles
    # to the grid, so that pi does not flip to -pi.
    assert errors[torch.float64] < 1e-12


def test_c4_model_is_invariant_to_quarter_turns_not_others(benzene_2d):
    pos, x = benzene_2d
    group = SE2(num_rotations=4)
    fn = point_function(make_model(group), Lift(group), x)
    quarter = group.exp(torch.tensor([[math.pi / 2, 1.0, -0.5],
                                      [math.pi, 0.0, 3.0],
                                      [-math.pi / 2, 0.2, 0.2]],
                                     dtype=torch.float64))
    assert_equivariant(fn, pos, group, elements=quarter)
    eighth = group.exp(torch.tensor([[math.pi / 4, 0.0, 0.0]], dtype=torch.float64))
    with pytest.raises(AssertionError):
        assert_equivariant(fn, pos, group, elements=eighth)


@pytest.mark.parametrize('name', ALL_GROUPS)
def test_invariance_to_left_multiplied_elements(real_molecule, benzene_2d, name):
    group = group_resolver(name)
    if group.space_dim == 3:
        pos, x = real_molecule('CH3CH2OH')
    else:
        pos, x = benzene_2d
    lift = Lift(group, 1 if group.deterministic else 3, r=2.6)
    torch.manual_seed(2)
    lifted = lift.lift(pos)
    fn = element_function(make_model(group), group, lifted, x)
    errors = assert_equivariant(fn, lifted.g, group, on='elements')
    assert errors[torch.float64] < 1e-9 and errors[torch.float32] < 1e-4


@pytest.mark.parametrize('group', [SE3(), SO3(), SE2()])
def test_random_lifts_invariant_in_distribution(ethanol, group):
    pos, x = ethanol
    pos = pos[:, :group.space_dim]
    torch.manual_seed(0)
    lift = Lift(group, num_samples=2, r=2.0)
    fn = point_function(make_model(group), lift, x)
    assert_invariant_in_distribution(fn, pos, group, num_draws=48)
    # Negative control: a random function that sees absolute positions.
    biased = point_function(make_model(Trivial(group.space_dim)),
                            Lift(Trivial(group.space_dim)), x)
    with pytest.raises(AssertionError, match='standard errors'):
        assert_invariant_in_distribution(
            lambda p: biased(p) + 1e-6 * torch.randn(3, dtype=p.dtype), pos,
            group, num_draws=16)


def test_potential_forces_are_finite_and_translation_invariant(ethanol):
    r"""Gradients through the lift (forces of an invariant potential) are
    finite, and do not change when the molecule is translated."""
    pos, x = ethanol
    fn = point_function(make_model('T3', in_channels=5), Lift('T3'), x)

    def forces(p):
        p = p.clone().requires_grad_()
        return -torch.autograd.grad(fn(p)[:, 0].sum(), p)[0]

    f = forces(pos)
    assert torch.isfinite(f).all() and f.abs().sum() > 0
    torch.testing.assert_close(f.sum(0), torch.zeros(3, dtype=f.dtype),
                               atol=1e-12, rtol=0)  # Newton's third law
    assert_equivariant(forces, pos, T(3), act_out=lambda h, y: y)


def test_compiled_model_matches_eager(ethanol):
    pos, x = ethanol
    data = Lift('SE3', num_samples=2, r=2.0)(Data(pos=pos.float(), x=x.float()))
    model = make_model('SE3').float()
    batch = torch.zeros(data.num_nodes, dtype=torch.long)
    compiled = torch.compile(model, fullgraph=True, backend='aot_eager')
    torch.testing.assert_close(
        compiled(data.x, data.edge_index, data.edge_attr, batch, num_graphs=1),
        model(data.x, data.edge_index, data.edge_attr, batch, num_graphs=1))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_model_on_device(device, dtype, ethanol):
    pos, x = ethanol
    data = Lift('SO3', num_samples=2)(Data(pos=pos, x=x)).to(device)
    model = make_model(SO3()).to(device, dtype)
    out = model(data.x.to(dtype), data.edge_index, data.edge_attr.to(dtype))
    assert out.device.type == device.type and out.dtype == dtype


def test_empty_and_single_point_graphs():
    for group in (T(3), SE3(), SO2()):
        model = make_model(group, in_channels=1)
        for n in (0, 1):
            data = Lift(group)(Data(pos=torch.ones(n, group.space_dim,
                                                   dtype=torch.float64)))
            out = model(data.x, data.edge_index, data.edge_attr)
            assert out.shape == (1, 3) and torch.isfinite(out).all()


def test_without_final_norm_the_output_scale_follows_the_inputs(ethanol):
    r"""With the final LayerNorm the output is bounded by the head's
    weights whatever the features' scale; without it, features 1000x larger
    give an output about 1000x larger (what a potential energy needs)."""
    pos, x = ethanol
    data = Lift('T3')(Data(pos=pos, x=x))

    @torch.no_grad()
    def growth(model):
        out = [model(s * data.x, data.edge_index, data.edge_attr).abs().max()
               for s in (1.0, 1e3)]
        return float(out[1] / out[0])

    assert growth(make_model('T3', final_norm=False)) > 100
    assert growth(make_model('T3')) < 10
    assert make_model('T3', final_norm=False).norm is None


@pytest.mark.parametrize('attention', ['softmax', 'dot_product'])
@pytest.mark.parametrize('pool', ['mean', 'sum', 'max'])
@pytest.mark.parametrize('name', ['T3', 'SE3', 'SO3'])
@pytest.mark.parametrize('final_norm', [True, False])
def test_dense_path_matches_sparse_with_padding(real_molecule, attention, pool,
                                                name, final_norm):
    r"""The dense fast path on a padded batch equals the sparse path on the
    same complete graphs."""
    lift = Lift(name, 1 if name == 'T3' else 2)
    group = lift.group
    torch.manual_seed(3)
    datas = [lift(Data(pos=p, x=x)) for p, x in
             map(real_molecule, ('CH3CH2OH', 'H2O'))]
    model = make_model(group, attention=attention, pool=pool,
                       final_norm=final_norm)
    sparse = torch.cat([model(d.x, d.edge_index, d.edge_attr) for d in datas])

    M = max(d.num_nodes for d in datas)
    x = torch.zeros(2, M, 5, dtype=torch.float64)
    pair_attr = torch.zeros(2, M, M, group.edge_dim, dtype=torch.float64)
    mask = torch.zeros(2, M, dtype=torch.bool)
    for b, d in enumerate(datas):
        m = d.num_nodes
        x[b, :m], mask[b, :m] = d.x, True
        ref = group.pair_embedding(d.g[:, None], d.g[None, :],
                                   d.q[:, None].expand(m, m, -1),
                                   d.q[None, :].expand(m, m, -1))
        pair_attr[b, :m, :m] = ref
    dense = model.forward_dense(x, pair_attr, mask)
    torch.testing.assert_close(dense, sparse, atol=1e-12, rtol=1e-10)


def test_dense_inputs_of_padded_clouds_match_sparse(benzene_2d):
    r"""Lift.dense_inputs repeats features and mask for every lifted
    element: on a padded batch of two clouds with a 4-element lift the
    dense path equals the sparse path."""
    pos, x = benzene_2d
    lift = Lift('SE2-C4')
    model = make_model(lift.group)
    clouds = [(pos, x), (pos[:5] + 2.0, x[:5])]
    lifted = lift.lift(torch.cat([p for p, _ in clouds]),
                       torch.tensor([0] * 12 + [1] * 5))
    sparse = model(torch.cat([f for _, f in clouds])[lifted.point_index],
                   lifted.edge_index, lifted.edge_attr, lifted.batch)

    pos_pad = torch.zeros(2, 12, 2, dtype=torch.float64)
    x_pad = torch.zeros(2, 12, x.size(1), dtype=torch.float64)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    for b, (p, f) in enumerate(clouds):
        pos_pad[b, :len(p)], x_pad[b, :len(p)], mask[b, :len(p)] = p, f, True
    x_lift, pair_attr, mask_lift = lift.dense_inputs(x_pad, pos_pad, mask)
    assert x_lift.shape == (2, 48, x.size(1)) and mask_lift.sum() == 4 * 17
    dense = model.forward_dense(x_lift, pair_attr, mask_lift)
    torch.testing.assert_close(dense, sparse, atol=1e-12, rtol=1e-10)
    with pytest.raises(ValueError, match='same batch and point'):
        lift.dense_inputs(x_pad[:, :5], pos_pad, mask)


def test_reset_parameters_is_seeded():
    model = make_model('SE3')
    torch.manual_seed(5)
    model.reset_parameters()
    first = [p.clone() for p in model.parameters()]
    torch.manual_seed(5)
    model.reset_parameters()
    assert all(torch.equal(a, b) for a, b in zip(first, model.parameters()))
    torch.manual_seed(6)
    model.reset_parameters()
    assert not torch.equal(first[0], next(model.parameters()))
