r"""Lifting points to group elements: g o = x, shapes and point-major order,
the stratified / cyclic / stabiliser samples, points at the origin,
differentiability, reproducibility and errors. Inputs are real molecules."""
import math

import pytest
import torch
from _groups_util import (
    GROUPS,
    assert_close,
    check_elements,
    generator,
    ids,
    ks_bound,
    ks_statistic,
    molecule_pos,
    rotation_angle,
    space_pos,
)

from torch_lie.groups import SE2, SE3, SO2, SO3, T
from torch_lie.groups.rotations import so2_angle

# group: lift_size(num_samples) for num_samples = 1, 3
LIFT_SIZE = {
    'T(2)': (1, None),
    'T(3)': (1, None),
    'SO2()': (1, None),
    'SE2()': (1, 3),
    'SE2(num_rotations=4)': (4, None),
    'SO3()': (1, 3),
    'SE3()': (1, 3),
    "SO3(embedding='matrix')": (1, 3),
    "SE3(embedding='matrix')": (1, 3),
    "SE2(embedding='matrix')": (1, 3),
    "SE2(num_rotations=4, embedding='canonical')": (4, None),
    "SE3(embedding='quaternion')": (1, 3),
}


def num_samples(G):
    return 1 if G.deterministic else 3


def test_lift_size(group):
    one, three = LIFT_SIZE[repr(group)]
    assert group.lift_size() == group.lift_size(1) == one
    if three is None:
        assert group.deterministic
        with pytest.raises(ValueError, match='deterministic'):
            group.lift_size(3)
    else:
        assert not group.deterministic
        assert group.lift_size(3) == three
    with pytest.raises(ValueError, match="'num_samples' must be >= 1"):
        group.lift_size(0)


def test_lift_maps_origin_to_point(group, dtype, device):
    # Atoms of benzene (2D) / ethanol (3D), plus a point at the origin.
    pos = space_pos(group, dtype, device)
    pos = torch.cat([pos, torch.zeros_like(pos[:1])]).requires_grad_()
    S = num_samples(group)
    K = group.lift_size(S)
    g, q = group.lift(pos, S, generator=generator(device))
    N = pos.size(0)
    assert g.shape[0] == N * K and q.shape == (N * K, group.q_dim)
    assert g.dtype == q.dtype == dtype and g.device.type == device
    check_elements(group, g)
    # Element i * K + k lifts point i.
    target = pos.detach().repeat_interleave(K, dim=0)
    if group.q_dim == 0:
        # g o = x with o the origin.
        assert_close(group.act(g, torch.zeros_like(target)), target)
    else:
        # SO(n): g e1 = x / |x| and q = |x|, so g (q e1) = x.
        assert_close(q[:, 0], target.norm(dim=-1))
        e1 = torch.zeros_like(target)
        e1[:, 0] = 1
        ge1 = group.act(g, e1)
        assert_close(ge1[:-K], target[:-K] / q[:-K])
        assert_close(ge1 * q, target)
        assert torch.equal(q[-K:], torch.zeros_like(q[-K:]))
    # Differentiable in pos, with finite gradients (origin included).
    w = torch.randn(g.shape, generator=generator('cpu', 1), dtype=dtype)
    (grad, ) = torch.autograd.grad((g * w.to(device)).sum() + q.sum(), pos)
    assert torch.isfinite(grad).all()
    assert grad.abs().max() > 1e-3


def test_se2_stratified_angles(dtype, device):
    G, S = SE2(), 5
    pos = molecule_pos('C6H6', 2, dtype, device)
    g, _ = G.lift(pos, S, generator=generator(device))
    theta = so2_angle(G.rotation(g)).double().remainder(2 * math.pi)
    theta = theta.view(-1, S)
    # theta_s = 2 pi (s + eps) / S: consecutive samples exactly 2 pi / S
    # apart, the first in [0, 2 pi / S), so all S cover [0, 2 pi).
    step = 2 * math.pi / S
    assert_close(theta.diff(dim=1), torch.full_like(theta[:, 1:], step),
                 torch.float32 if dtype == torch.float32 else None, scale=10)
    assert (theta[:, 0] >= 0).all() and (theta[:, 0] < step).all()
    assert (theta < 2 * math.pi).all()
    # One offset per point: the points' offsets differ.
    assert theta[:, 0].unique().numel() == pos.size(0)


def test_se2_offsets_uniform():
    G = SE2()
    pos = torch.randn(4000, 2, generator=generator('cpu'), dtype=torch.float64)
    g, _ = G.lift(pos, 2, generator=generator('cpu', 1))
    theta = so2_angle(G.rotation(g)).remainder(2 * math.pi).view(-1, 2)
    eps = theta[:, 0] / math.pi  # in [0, 1)
    assert ks_statistic(eps, lambda x: x.clamp(0, 1)) < ks_bound(4000)


def rot90(dtype, device):
    G = SE2(num_rotations=4)
    R = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=dtype, device=device)
    return G.from_parts(R)


def test_se2_cyclic_lift(dtype, device):
    G = SE2(num_rotations=4)
    pos = molecule_pos('C6H6', 2, dtype, device)
    g, _ = G.lift(pos, generator=generator(device, 0))
    g2, _ = G.lift(pos, generator=generator(device, 1))
    assert torch.equal(g, g2)  # deterministic: the generator is unused
    theta = so2_angle(G.rotation(g)).double().view(-1, 4)
    ref = torch.tensor([0, 0.5, 1.0, -0.5], dtype=torch.float64) * math.pi
    assert_close(theta, ref.to(theta.device).expand_as(theta),
                 torch.float32 if dtype == torch.float32 else None, scale=10)
    # Rotating the input by 90 degrees permutes each point's lifted elements
    # cyclically: h g_{i,k} = g'_{i,k+1}.
    h = rot90(dtype, device)
    g_rot, _ = G.lift(G.act(h, pos))
    moved = G.compose(h, g).view(-1, 4, 3, 3).roll(1, dims=1)
    err = (moved - g_rot.view(-1, 4, 3, 3)).abs().max().item()
    assert err < (4e-15 if dtype == torch.float64 else 1e-6), err
    # Negative control: 45 degrees is not in C4, so no permutation works.
    h45 = G.exp(torch.tensor([math.pi / 4, 0, 0], dtype=dtype,
                             device=device))
    g45, _ = G.lift(G.act(h45, pos))
    moved = G.compose(h45, g).view(-1, 4, 1, 3, 3)
    diff = (moved - g45.view(-1, 1, 4, 3, 3)).abs().flatten(-2).amax(-1)
    assert diff.amin() > 0.5


@pytest.mark.parametrize('G', [T(2), T(3), SE2(num_rotations=4)], ids=ids)
def test_lift_translation_equivariant(G, dtype, device):
    pos = space_pos(G, dtype, device)
    t = torch.tensor([0.3, -1.7, 2.2][:G.space_dim], dtype=dtype,
                     device=device)
    g, _ = G.lift(pos)
    g_t, _ = G.lift(pos + t)
    shift = t if isinstance(G, T) else G.from_parts(
        torch.eye(2, dtype=dtype, device=device), t)
    assert_close(g_t, G.compose(shift, g), scale=10)


def test_so2_lift_equivariant(dtype, device):
    G = SO2()
    pos = molecule_pos('C6H6', 2, dtype, device)
    h = G.exp(torch.tensor([0.9], dtype=dtype, device=device))
    g, q = G.lift(pos)
    g_rot, q_rot = G.lift(G.act(h, pos))
    assert_close(g_rot, G.compose(h, g), scale=10)
    assert_close(q_rot, q, scale=10)
    # The lift of x is the rotation by the polar angle of x.
    phi = torch.atan2(pos[:, 1], pos[:, 0])
    assert_close(G.log(g)[:, 0], phi, scale=10)


def stabiliser_angle(R):
    r"""Angle of the second column of :obj:`R` in a fixed basis of the
    plane orthogonal to the first column (all first columns equal)."""
    d = R[0, :, 0]
    u = torch.linalg.cross(d, torch.tensor([0.0, 0.0, 1.0], dtype=R.dtype))
    u = u / u.norm()
    v = torch.linalg.cross(d, u)
    b2 = R[:, :, 1]
    return torch.atan2(b2 @ v, b2 @ u)


def test_so3_lift_stabiliser_uniform(dtype):
    G = SO3()
    pos = molecule_pos('CH3CH2OH', 3, dtype)[:1]  # one atom of ethanol
    n = 5000
    g, q = G.lift(pos, n, generator=generator('cpu', 2))
    d = pos[0] / pos[0].norm()
    assert_close(g[:, :, 0], d.expand(n, 3))
    phi = stabiliser_angle(g.double())
    se = 1 / math.sqrt(n)
    for m in (torch.cos(phi), torch.sin(phi), torch.cos(2 * phi)):
        assert abs(m.mean().item()) < 5 * se
    assert ks_statistic(phi, lambda x: (x + math.pi) / (2 * math.pi)) \
        < ks_bound(n)


@pytest.mark.parametrize('G', [SE3(), SO3()], ids=ids)
def test_haar_lifts(G):
    # SE(3) lifts carry Haar rotations; SO(3) lifts a point at the origin
    # (stabiliser: all of SO(3)) to Haar rotations. E[R] = 0, E[cos] = -1/2.
    n = 5000
    pos = torch.zeros(1, 3, dtype=torch.float64)
    if isinstance(G, SE3):
        pos = pos + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    g, q = G.lift(pos, n, generator=generator('cpu', 3))
    R = G.rotation(g)
    se = 1 / math.sqrt(n)
    assert R.mean(0).abs().max() < 5 * se
    cos = torch.cos(rotation_angle(R))
    assert abs(cos.mean().item() + 0.5) < 5 * 0.5 * se
    assert_close(G.act(g, torch.zeros(n, 3, dtype=torch.float64)),
                 pos.expand(n, 3))


def test_so2_lift_at_origin(dtype):
    G = SO2()
    pos = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=dtype,
                       requires_grad=True)
    g, q = G.lift(pos)
    assert torch.equal(g[0], torch.eye(2, dtype=dtype))
    assert q[0, 0].item() == 0
    w = torch.randn(g.shape, generator=generator('cpu'), dtype=dtype)
    (grad, ) = torch.autograd.grad((g * w).sum() + q.sum(), pos)
    assert torch.isfinite(grad).all()
    # The documented behaviour: zero gradient at the origin.
    assert torch.equal(grad[0], torch.zeros(2, dtype=dtype))
    assert grad[1].abs().max() > 0.1


def test_so3_lift_at_origin(dtype):
    G = SO3()
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=dtype,
                       requires_grad=True)
    g, q = G.lift(pos, 3, generator=generator('cpu'))
    check_elements(G, g)
    assert torch.equal(q[:3], torch.zeros(3, 1, dtype=dtype))
    # Random rotations: the three samples differ.
    assert (g[0] - g[1]).abs().max() > 1e-3
    w = torch.randn(g.shape, generator=generator('cpu'), dtype=dtype)
    (grad, ) = torch.autograd.grad((g * w).sum() + q.sum(), pos)
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[0], torch.zeros(3, dtype=dtype))
    assert grad[1].abs().max() > 1e-3


@pytest.mark.parametrize('G', [T(2), T(3), SO2(), SE2(num_rotations=4),
                               SE2(), SO3(), SE3()], ids=ids)
def test_lift_gradcheck(G):
    pos = space_pos(G)[:6].clone().requires_grad_()
    S = num_samples(G)

    def lift(pos):
        # A fresh generator per call: the random lifts are then a fixed
        # differentiable function of pos.
        return G.lift(pos, S, generator=generator('cpu', 5))

    assert torch.autograd.gradcheck(lift, (pos, ))


def test_lift_reproducible(group, device):
    pos = space_pos(group, device=device)
    S = num_samples(group)
    a, _ = group.lift(pos, S, generator=generator(device, 11))
    b, _ = group.lift(pos, S, generator=generator(device, 11))
    c, _ = group.lift(pos, S, generator=generator(device, 12))
    assert torch.equal(a, b)
    if group.deterministic:
        assert torch.equal(a, c)
    else:
        assert (a - c).abs().max() > 1e-3


def test_lift_errors(group):
    n = group.space_dim
    for shape in [(5, n + 1), (5, n - 1), (n, ), (2, 5, n)]:
        pos = torch.zeros(shape)
        with pytest.raises(ValueError) as info:
            group.lift(pos)
        msg = str(info.value)
        assert f'must have shape [N, {n}]' in msg
        assert f'got {list(shape)}' in msg
    pos = space_pos(group, torch.float32)
    for S in (0, -2):
        with pytest.raises(ValueError,
                           match="'num_samples' must be >= 1"):
            group.lift(pos, S)
    if group.deterministic:
        with pytest.raises(ValueError, match='deterministic lift'):
            group.lift(pos, 2)
    else:
        g, _ = group.lift(pos, 2)
        assert g.size(0) == 2 * pos.size(0)


def test_every_group_listed():
    assert {repr(G) for G in GROUPS} == set(LIFT_SIZE)
