import io
import math

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from torch_lie.groups import SE2, SE3, SO2, SO3, T, Trivial, group_resolver
from torch_lie.nn import LieTransformer
from torch_lie.testing import (
    assert_equivariant,
    assert_invariant_in_distribution,
    assert_lifted_invariant,
)
from torch_lie.transforms import Lift

ALL_GROUPS = ['T2', 'T3', 'SO2', 'SE2', 'SE2-C4', 'SO3', 'SE3', 'SO3-matrix',
              'SE3-matrix', 'SE2-matrix', 'SE2-C4-canonical']


def make_model(lift, in_channels=5, **kwargs):
    torch.manual_seed(0)
    kwargs = {'num_layers': 2, 'heads': 2, 'kernel_dim': 8, **kwargs}
    if not isinstance(lift, Lift):
        lift = Lift(lift)
    return LieTransformer(in_channels, 16, 3, lift, **kwargs).double()


def point_function(model, x):
    r"""The model's output as a function of the points (lifted inside)."""
    def fn(pos):
        return model.to(pos.dtype)(Data(pos=pos, x=x.to(pos.dtype)))
    return fn


def test_output_shape_pooling_and_repr(ethanol):
    pos, x = ethanol
    lift = Lift('SE3', num_samples=2, r=2.0)
    data = lift(Data(pos=pos, x=x))
    for pool in ('mean', 'sum', 'max'):
        model = make_model(lift, pool=pool)
        out = model(data)
        assert out.shape == (1, 3) and torch.isfinite(out).all()
    assert repr(model) == ('LieTransformer(5, 16, 3, lift=Lift(SE3(), '
                           'num_samples=2, r=2.0, max_num_neighbors=None), '
                           'num_layers=2)')
    assert model.group is lift.group
    with pytest.raises(ValueError, match='pool'):
        make_model(lift, pool='median')


@pytest.mark.parametrize('name', ['T3', 'SE3'])
def test_batch_equals_single_graphs(real_molecule, name):
    lift = Lift(name, num_samples=1 if name == 'T3' else 2, r=2.5)
    torch.manual_seed(1)
    datas = [lift(Data(pos=p, x=x)) for p, x in
             map(real_molecule, ('CH3CH2OH', 'H2O', 'C6H6', 'CH4'))]
    model = make_model(lift)
    batch = next(iter(DataLoader(datas, batch_size=4)))
    out = model(batch)
    single = torch.cat([model(d) for d in datas])
    torch.testing.assert_close(out, single, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize('r', [None, 2.5])
def test_model_lifts_a_batch_per_graph(real_molecule, r):
    r"""A collated batch of point clouds is lifted graph by graph: one
    graph's output does not change when another graph changes."""
    clouds = [Data(pos=p, x=x) for p, x in
              map(real_molecule, ('CH3CH2OH', 'H2O', 'C6H6'))]
    model = make_model(Lift('T3', r=r))
    out = model(Batch.from_data_list(clouds))
    single = torch.cat([model(d) for d in clouds])
    torch.testing.assert_close(out, single, atol=1e-12, rtol=1e-12)
    moved = Data(pos=clouds[1].pos * 2.0, x=clouds[1].x)
    out2 = model(Batch.from_data_list([clouds[0], moved, clouds[2]]))
    torch.testing.assert_close(out2[[0, 2]], out[[0, 2]], atol=1e-12,
                               rtol=1e-12)
    assert not torch.allclose(out2[1], out[1])


def test_permutation_invariance(ethanol):
    pos, x = ethanol
    model = make_model(Lift('T3', r=2.0))
    fn = point_function(model, x)
    perm = torch.randperm(pos.size(0))
    perm_out = point_function(model, x[perm])(pos[perm])
    torch.testing.assert_close(perm_out, fn(pos), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize('r', [None, 2.0])
def test_translation_invariance_t3(ethanol, r):
    pos, x = ethanol
    errors = assert_equivariant(point_function(make_model(Lift('T3', r=r)), x),
                                pos, T(3))
    assert errors[torch.float64] < 1e-9 and errors[torch.float32] < 1e-4


def test_negative_control_fails(ethanol):
    r"""The same architecture on absolute positions is not invariant, and the
    checker says so; nor is the T(3) model invariant to rotations."""
    pos, x = ethanol
    fn = point_function(make_model(Trivial(3)), x)
    with pytest.raises(AssertionError, match='Not invariant'):
        assert_equivariant(fn, pos, T(3))
    fn = point_function(make_model('T3'), x)
    with pytest.raises(AssertionError, match='Not invariant'):
        assert_equivariant(fn, pos, SE3())


@pytest.mark.parametrize('name', ['SE2-C4', 'SO2', 'T2'])
def test_exact_invariance_of_deterministic_lifts_2d(benzene_2d, name):
    pos, x = benzene_2d
    group = group_resolver(name)
    errors = assert_equivariant(
        point_function(make_model(Lift(group, r=2.6)), x), pos, group,
        num_elements=6)
    # Exact up to rounding: the SE2-C4 pair embedding snaps relative angles
    # to the grid, so that pi does not flip to -pi.
    assert errors[torch.float64] < 1e-12


def test_c4_model_is_invariant_to_quarter_turns_not_others(benzene_2d):
    pos, x = benzene_2d
    group = SE2(num_rotations=4)
    fn = point_function(make_model(group), x)
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
    model = make_model(lift)
    torch.manual_seed(2)
    errors = assert_lifted_invariant(model, Data(pos=pos, x=x))
    assert errors[torch.float64] < 1e-9 and errors[torch.float32] < 1e-4


@pytest.mark.parametrize('group', [SE3(), SO3(), SE2()])
def test_random_lifts_invariant_in_distribution(ethanol, group):
    pos, x = ethanol
    pos = pos[:, :group.space_dim]
    torch.manual_seed(0)
    fn = point_function(make_model(Lift(group, num_samples=2, r=2.0)), x)
    assert_invariant_in_distribution(fn, pos, group, num_draws=48)
    # Negative control: a random function that sees absolute positions.
    biased = point_function(make_model(Trivial(group.space_dim)), x)
    with pytest.raises(AssertionError, match='standard errors'):
        assert_invariant_in_distribution(
            lambda p: biased(p) + 1e-6 * torch.randn(3, dtype=p.dtype), pos,
            group, num_draws=16)


def test_sampled_neighbourhoods_invariant_in_distribution(ethanol):
    r"""Neighbours drawn at random (the paper's QM9 neighbourhoods) keep
    the model invariant in distribution (the negative control, a draw that
    sees absolute positions, is in tests/transforms/test_lift.py: an
    untrained model barely tells neighbourhoods apart)."""
    pos, x = ethanol
    lift = Lift('SE3', num_samples=2, max_num_neighbors=5,
                num_neighbor_samples=2)
    fn = point_function(make_model(lift, attention='dot_product'), x)
    torch.manual_seed(0)
    assert not torch.equal(fn(pos), fn(pos))  # a fresh draw per call
    assert_invariant_in_distribution(fn, pos, SE3(), num_draws=64)


def test_potential_forces_are_finite_and_translation_invariant(ethanol):
    r"""Gradients through the lift inside the model (forces of an invariant
    potential) are finite, and do not change when the molecule is
    translated."""
    pos, x = ethanol
    fn = point_function(make_model('T3', in_channels=5), x)

    def forces(p):
        p = p.clone().requires_grad_()
        return -torch.autograd.grad(fn(p)[:, 0].sum(), p)[0]

    f = forces(pos)
    assert torch.isfinite(f).all() and f.abs().sum() > 0
    torch.testing.assert_close(f.sum(0), torch.zeros(3, dtype=f.dtype),
                               atol=1e-12, rtol=0)  # Newton's third law
    assert_equivariant(forces, pos, T(3), act_out=lambda h, y: y)


@pytest.mark.parametrize('attention', ['softmax', 'dot_product', 'norm_exp'])
@pytest.mark.parametrize('combine', ['sum', 'mlp', 'multiply', 'embedding'])
@pytest.mark.parametrize('pool', ['mean', 'sum', 'max'])
@pytest.mark.parametrize('name', ['T3', 'SE3', 'SO3'])
@pytest.mark.parametrize('sizes', [(5, 5, 5), (5, 3, 4)])
def test_dense_and_sparse_kernels_agree(attention, combine, pool, name, sizes):
    r"""On complete graphs, of equal sizes or padded, both kernels give the
    same outputs and the same first and second derivatives in the
    positions (with the paper's pointwise head for the content-embedding
    kernel)."""
    lift = Lift(name, 1 if name == 'T3' else 2)
    paper = dict(content_dim=3, head='pointwise', kernel_act_out=True)
    model = make_model(lift, attention=attention, combine=combine, pool=pool,
                       final_norm=pool != 'max',
                       **(paper if combine == 'embedding' else {}))
    torch.manual_seed(3)
    pos = torch.randn(sum(sizes), 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(sum(sizes), 5, dtype=torch.float64)
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    results = []
    for kernel in ('dense', 'sparse'):
        model.kernel = kernel
        lifted = lift.lift(pos, x, batch,
                           generator=torch.Generator().manual_seed(0))
        out = model(lifted)
        grad, = torch.autograd.grad(out.sum(), pos, create_graph=True)
        grad2, = torch.autograd.grad((grad * grad).sum(), pos)
        results.append((out, grad, grad2))
    for dense, sparse in zip(*results):
        torch.testing.assert_close(dense, sparse, atol=1e-10, rtol=1e-10)


def test_auto_kernel_choice():
    r"""'auto' takes the dense kernel for complete graphs whose padding at
    most doubles the pairs and makes at most 2^16 of them, the sparse one
    otherwise."""
    def layout(model, sizes):
        data = Batch.from_data_list([Data(pos=torch.randn(n, 3)) for n in sizes])
        return model._dense_layout(model.lift(data))

    model = make_model('T3')
    B, M, counts = layout(model, [4, 4, 4])
    assert (B, M, counts) == (3, 4, None)  # equal sizes: views, no padding
    B, M, counts = layout(model, [12, 10, 14])  # molecules: little padding
    assert (B, M) == (3, 14) and counts.tolist() == [12, 10, 14]
    assert layout(model, [30, 3, 5]) is None  # mostly padding: sparse
    # More than 2^16 pairs: sparse, equal sizes or not.
    assert layout(model, [128] * 4)[:2] == (4, 128)  # 65,536 pairs
    assert layout(model, [129] * 4) is None
    assert layout(model, [130, 129, 129, 129]) is None
    model.kernel = 'dense'
    assert layout(model, [30, 3, 5])[1] == 30
    model.kernel = 'sparse'
    assert layout(model, [4, 4, 4]) is None
    radius = make_model(Lift('T3', r=10.0))
    assert layout(radius, [4, 4, 4]) is None
    radius.kernel = 'dense'
    with pytest.raises(ValueError, match='complete graphs'):
        layout(radius, [4, 4, 4])


def test_compiled_model_matches_eager(ethanol):
    pos, x = ethanol
    lift = Lift('SE3', num_samples=2, r=2.0)
    data = lift(Data(pos=pos.float(), x=x.float()))
    model = make_model(lift).float()
    compiled = torch.compile(model, backend='aot_eager')
    torch.testing.assert_close(compiled(data), model(data))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_model_on_device(device, dtype, ethanol):
    pos, x = ethanol
    data = Data(pos=pos.to(dtype), x=x.to(dtype)).to(device)
    model = make_model(Lift('SO3', num_samples=2)).to(device, dtype)
    out = model(data)
    assert out.device.type == device.type and out.dtype == dtype


@pytest.mark.parametrize('kernel', ['auto', 'sparse'])
def test_empty_and_single_point_graphs(kernel):
    for group in (T(3), SE3(), SO2()):
        model = make_model(group, in_channels=1, attention='dot_product',
                           kernel=kernel)
        for n in (0, 1):
            data = Data(pos=torch.ones(n, group.space_dim,
                                       dtype=torch.float64))
            out = model(data)
            assert out.shape == (1, 3) and torch.isfinite(out).all()
        # A batch with an empty graph: every graph's output is finite.
        batch = Batch.from_data_list([
            Data(pos=torch.ones(0, group.space_dim, dtype=torch.float64)),
            Data(pos=torch.randn(3, group.space_dim, dtype=torch.float64))])
        out = model(batch)
        assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_without_final_norm_the_output_scale_follows_the_inputs(ethanol):
    r"""With the final LayerNorm the output is bounded by the head's
    weights whatever the features' scale; without it, features 1000x larger
    give an output about 1000x larger (what a potential energy needs)."""
    pos, x = ethanol

    @torch.no_grad()
    def growth(model):
        out = [model(Data(pos=pos, x=s * x)).abs().max() for s in (1.0, 1e3)]
        return float(out[1] / out[0])

    assert growth(make_model('T3', final_norm=False)) > 100
    assert growth(make_model('T3')) < 10
    assert make_model('T3', final_norm=False).norm is None


def test_inputs_without_features_need_an_attention_that_sees_geometry(ethanol):
    r"""Softmax attention over equal features is blind to the geometry: the
    model refuses, naming the fix; dot-product attention sees it."""
    pos, _ = ethanol
    with pytest.raises(ValueError, match="attention='dot_product'"):
        make_model('T3', in_channels=1)(Data(pos=pos))
    model = make_model('T3', in_channels=1, attention='dot_product')
    out = model(Data(pos=pos))
    assert not torch.allclose(out, model(Data(pos=1.5 * pos)))
    with pytest.raises(ValueError, match='in_channels=5'):
        make_model('T3')(Data(pos=pos, x=torch.ones(pos.size(0), 2,
                                                    dtype=pos.dtype)))


def test_lifted_data_must_come_from_the_models_lift(ethanol):
    pos, x = ethanol
    model = make_model(Lift('SE3', num_samples=2))
    with pytest.raises(ValueError, match=r'lifted by Lift\(T\(3\).*lifts '
                                         r'with Lift\(SE3\(\), num_samples=2'):
        model(Lift('T3')(Data(pos=pos, x=x)))
    with pytest.raises(ValueError, match='lifted by Lift\\(SE3\\(\\), '
                                         'num_samples=1'):
        model(Lift('SE3')(Data(pos=pos, x=x)))
    assert model(model.lift(Data(pos=pos, x=x))).shape == (1, 3)


def test_saved_state_records_the_lift(tmp_path):
    se3 = make_model('SE3')
    state = se3.state_dict()
    with pytest.raises(ValueError, match=r'Trivial\(3\).*SE3\(\)|SE3\(\).*'
                                         r'Trivial\(3\)'):
        make_model('Trivial3').load_state_dict(state)  # same edge_dim
    with pytest.raises(ValueError, match='r=2.0'):
        make_model(Lift('SE3', r=2.0)).load_state_dict(state)
    legacy = {k: v for k, v in state.items() if k != '_extra_state'}
    with pytest.raises(ValueError, match='do not record their lift'):
        make_model('SE3').load_state_dict(legacy)
    legacy['_extra_state'] = {'lift': repr(se3.lift)}  # the fix it names
    make_model('SE3').load_state_dict(legacy)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    other = make_model('SE3')
    other.load_state_dict(torch.load(buffer))  # weights_only
    assert all(torch.equal(a, b) for a, b in
               zip(se3.parameters(), other.parameters()))


def test_bad_arguments():
    lift = Lift('T3')
    with pytest.raises(ValueError, match="'heads'"):
        LieTransformer(5, 16, 3, lift, heads=0)
    with pytest.raises(ValueError, match="'num_layers'"):
        LieTransformer(5, 16, 3, lift, num_layers=0)
    with pytest.raises(ValueError, match="'hidden_channels' \\(18\\)"):
        LieTransformer(5, 18, 3, lift, heads=4)
    with pytest.raises(ValueError, match="'lift' must be a Lift"):
        LieTransformer(5, 16, 3, 'SE3')
    with pytest.raises(ValueError, match="'kernel'"):
        LieTransformer(5, 16, 3, lift, kernel='fast')
    # Each argument is checked where it enters, by name.
    for kwargs, message in [
            (dict(kernel_dim=0), "'kernel_dim' must be >= 1"),
            (dict(kernel_dim=2.5), "'kernel_dim' must be an int"),
            (dict(dropout=1.0), r"'dropout' must be in \[0.0, 1.0\)"),
            (dict(mlp_ratio=0), "'mlp_ratio' must be in"),
            (dict(mlp_ratio=float('nan')), "'mlp_ratio' must be a finite")]:
        with pytest.raises(ValueError, match=message):
            LieTransformer(5, 16, 3, lift, **kwargs)
    for args, name in [((0, 16, 3), 'in_channels'),
                       ((5, True, 3), 'hidden_channels'),
                       ((5, 16, 0), 'out_channels')]:
        with pytest.raises(ValueError, match=f"'{name}' must be"):
            LieTransformer(*args, lift)


def test_bad_inputs_name_the_fix(ethanol):
    pos, x = ethanol
    model = make_model(Lift('SE3', 2))  # float64
    with pytest.raises(TypeError, match=r'Data or Batch.*got Tensor'):
        model(pos)
    with pytest.raises(ValueError, match="'x' is torch.float32 but the model "
                                         "is torch.float64"):
        model(Data(pos=pos, x=x.float()))
    with pytest.raises(ValueError, match="'pos' is torch.float32 but the "
                                         "model is torch.float64"):
        model(Data(pos=pos.float(), x=x))
    with pytest.raises(ValueError, match="'pos' must be a floating-point"):
        model(Data(pos=pos.long(), x=x))
    assert model(Data(pos=pos, x=x)).shape == (1, 3)


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
