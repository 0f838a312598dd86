r"""Group axioms, the left action and the validity of elements, for every
group, dtype and device."""
import math

import pytest
import torch
from _groups_util import (
    RIGID_GROUPS,
    algebra,
    assert_close,
    check_elements,
    generator,
    ids,
    space_pos,
)

from torch_lie.groups import SE2, SE3, SO2, SO3, T, Trivial


def elements(G, num, dtype, device, seed=0):
    return G.sample(num, generator=generator(device, seed), dtype=dtype,
                    device=device)


def test_sample_and_identity(group, dtype, device):
    g = elements(group, 8, dtype, device)
    assert g.dtype == dtype and g.device.type == device
    if isinstance(group, T):
        assert g.shape == (8, group.space_dim)
    else:
        n = group.space_dim + int(group.has_translation)
        assert g.shape == (8, n, n)
    check_elements(group, g)
    # Identity: zero translation / identity matrix, of any leading shape.
    e = group.identity(2, 3, dtype=dtype, device=device)
    assert e.dtype == dtype and e.device.type == device
    if isinstance(group, T):
        expected = torch.zeros(2, 3, group.space_dim)
    else:
        expected = torch.eye(g.size(-1)).expand(2, 3, -1, -1)
    assert torch.equal(e.cpu(), expected.to(dtype))
    # ... and neutral on both sides.
    e = group.identity(8, dtype=dtype, device=device)
    assert_close(group.compose(e, g), g)
    assert_close(group.compose(g, e), g)


def test_group_laws(group, dtype, device):
    g, h, k = elements(group, 24, dtype, device).chunk(3)
    e = group.identity(8, dtype=dtype, device=device)
    # Associativity.
    assert_close(group.compose(group.compose(g, h), k),
                 group.compose(g, group.compose(h, k)), scale=10)
    # Inverses on both sides; inv is an involution; (gh)^-1 = h^-1 g^-1.
    g_inv = group.inv(g)
    check_elements(group, g_inv)
    assert_close(group.compose(g, g_inv), e, scale=10)
    assert_close(group.compose(g_inv, g), e, scale=10)
    assert_close(group.inv(g_inv), g)
    assert_close(group.inv(group.compose(g, h)),
                 group.compose(group.inv(h), g_inv), scale=10)
    # Composition broadcasts over leading dimensions.
    gh = group.compose(g[:3, None], h[None, :4])
    assert gh.shape[:2] == (3, 4)
    assert_close(gh[2, 1], group.compose(g[2], h[1]))


def test_action(group, dtype, device):
    x = space_pos(group, dtype, device)  # benzene / ethanol atoms
    g = elements(group, 6, dtype, device)
    h = elements(group, 6, dtype, device, seed=1)
    # A left action: (gh) x = g (h x); one element moves a whole cloud.
    lhs = group.act(group.compose(g, h)[:, None], x[None])
    rhs = group.act(g[:, None], group.act(h[:, None], x[None]))
    assert lhs.shape == (6, x.size(0), group.space_dim)
    assert_close(lhs, rhs, scale=10)
    # e x = x and g^-1 (g x) = x.
    assert_close(group.act(group.identity(dtype=dtype, device=device), x), x)
    assert_close(group.act(group.inv(g[0]), group.act(g[0], x)), x,
                 scale=10)
    # All groups here are subgroups of E(n): the molecule's pairwise
    # distances are preserved while the atoms themselves move.
    g1 = group.exp(algebra(group, 1.0, dtype, device))
    y = group.act(g1, x)
    assert (y - x).abs().max() > 0.5
    assert_close(torch.cdist(y, y), torch.cdist(x, x), scale=10)


def test_one_parameter_subgroup(group, dtype, device):
    # exp(s a) exp(t a) = exp((s + t) a): a real check of exp's formula,
    # including the coupling of rotation and translation in SE(n).
    a = torch.randn(5, group.lie_dim, generator=generator('cpu'),
                    dtype=dtype).to(device) * 0.6
    s, t = 0.7, -1.9
    lhs = group.compose(group.exp(s * a), group.exp(t * a))
    assert_close(lhs, group.exp((s + t) * a), scale=10)


@pytest.mark.parametrize('G', RIGID_GROUPS, ids=ids)
def test_rigid_elements_valid(G, dtype, device):
    g = elements(G, 16, dtype, device)
    check_elements(G, g)
    check_elements(G, G.inv(g))
    check_elements(G, G.compose(g[:8], g[8:]))
    a = torch.randn(16, G.lie_dim, generator=generator('cpu'),
                    dtype=dtype).to(device) * 2
    check_elements(G, G.exp(a))
    check_elements(G, G.identity(3, dtype=dtype, device=device))
    g_lift, _ = G.lift(space_pos(G, dtype, device),
                       num_samples=1 if G.deterministic else 2,
                       generator=generator(device))
    check_elements(G, g_lift)


@pytest.mark.parametrize('G', RIGID_GROUPS, ids=ids)
def test_from_parts_roundtrip(G, dtype, device):
    g = elements(G, 4, dtype, device)
    R, t = G.rotation(g), G.translation(g)
    assert R.shape == (4, G.space_dim, G.space_dim)
    assert t.shape == (4, G.space_dim)
    if not G.has_translation:
        assert torch.equal(t, torch.zeros_like(t))
    assert torch.equal(G.from_parts(R, t), g)


def test_known_values(dtype):
    # Fixed conventions, checked against hand-computed numbers.
    t = torch.tensor
    x = t([[1.0, 0.0]], dtype=dtype)
    # SO(2): exp(pi/2) rotates e1 to e2 counter-clockwise.
    R = SO2().exp(t([math.pi / 2], dtype=dtype))
    assert_close(R, t([[0.0, -1.0], [1.0, 0.0]], dtype=dtype))
    assert_close(SO2().act(R, x), t([[0.0, 1.0]], dtype=dtype))
    # SE(2): exp((0, u)) is the translation by u; T(t) R acts as R then t.
    g = SE2().exp(t([0.0, 2.0, -3.0], dtype=dtype))
    assert_close(SE2().act(g, x), t([[3.0, -3.0]], dtype=dtype))
    g = SE2().exp(t([math.pi, 0.0, 0.0], dtype=dtype))
    assert_close(SE2().act(g, x), t([[-1.0, 0.0]], dtype=dtype))
    # SE(2): exp((pi, 0, pi)): V = [[0, -2/pi], [2/pi, 0]] at theta = pi,
    # so the translation is V (0, pi) = (-2, 0) (rotation about (-1, 0)).
    g = SE2().exp(t([math.pi, 0.0, math.pi], dtype=dtype))
    assert_close(SE2().translation(g), t([-2.0, 0.0], dtype=dtype))
    # SO(3): rotation by pi/2 about z maps e1 to e2 and e2 to -e1.
    R = SO3().exp(t([0.0, 0.0, math.pi / 2], dtype=dtype))
    e = torch.eye(3, dtype=dtype)
    assert_close(SO3().act(R, e), t([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0],
                                      [0.0, 0.0, 1.0]], dtype=dtype))
    # SE(3): screw motion, rotation pi about z with u = (0, 0, 1) gives
    # a pure translation along z (V e3 = e3).
    g = SE3().exp(t([0.0, 0.0, math.pi, 0.0, 0.0, 1.0], dtype=dtype))
    assert_close(SE3().translation(g), t([0.0, 0.0, 1.0], dtype=dtype))
    # SE(3): rotation pi/2 about z with u = (1, 0, 0):
    # V = I + (1 - cos)/th^2 W + (th - sin)/th^3 W^2, V e1 = (2/pi, 2/pi, 0).
    g = SE3().exp(t([0.0, 0.0, math.pi / 2, 1.0, 0.0, 0.0], dtype=dtype))
    assert_close(SE3().translation(g),
                 t([2 / math.pi, 2 / math.pi, 0.0], dtype=dtype))
    # T(3): composition is addition.
    assert_close(T(3).compose(t([1.0, 2.0, 3.0], dtype=dtype),
                              t([0.5, 0.5, 0.5], dtype=dtype)),
                 t([1.5, 2.5, 3.5], dtype=dtype))


def test_sample_default_dtype():
    for G in (T(2), SO2(), SE2(), SE2(num_rotations=4), SO3(), SE3()):
        assert G.sample(2).dtype == torch.get_default_dtype()
        assert G.identity(2).dtype == torch.get_default_dtype()


def test_constructor_errors():
    for cls in (T, Trivial):
        with pytest.raises(ValueError, match="'n' must be >= 1"):
            cls(0)
        for bad in (2.5, True, '2'):
            with pytest.raises(ValueError, match="'n' must be an int"):
                cls(bad)
    with pytest.raises(ValueError, match="'num_rotations' must be >= 1"):
        SE2(num_rotations=0)
    with pytest.raises(ValueError, match="'num_rotations' must be an int"):
        SE2(num_rotations=2.5)
    for cls in (SO2, SE2, SO3, SE3):
        with pytest.raises(ValueError, match="'embedding' must be one of"):
            cls(embedding='dual_quaternion')
    for cls in (SO2, SO3):  # the embeddings of SE(3) and T(2) x C_k only
        for embedding in ('quaternion', 'canonical'):
            with pytest.raises(ValueError, match="'embedding' must be one of"):
                cls(embedding=embedding)


def test_group_attributes():
    table = {
        # group: (lie_dim, space_dim, q_dim, rotation_dim, deterministic)
        T(2): (2, 2, 0, 0, True),
        T(3): (3, 3, 0, 0, True),
        SO2(): (1, 2, 1, 1, True),
        SE2(): (3, 2, 0, 1, False),
        SE2(num_rotations=4): (3, 2, 0, 1, True),
        SO3(): (3, 3, 1, 3, False),
        SE3(): (6, 3, 0, 3, False),
    }
    for G, attrs in table.items():
        assert (G.lie_dim, G.space_dim, G.q_dim, G.rotation_dim,
                G.deterministic) == attrs, G
