r"""exp / log: round trips near 0 and near pi, independent references
(matrix exponential, SciPy rotation vectors), no NaN and correct gradients."""
import math

import pytest
import torch
from _groups_util import (
    GROUPS,
    RIGID_GROUPS,
    SO3_LIKE,
    algebra,
    assert_close,
    check_elements,
    generator,
    ids,
)
from scipy.spatial.transform import Rotation

from torch_lie.groups import SE2, SE3, SO2, SO3
from torch_lie.groups.rotations import hat

SMALL = [0.0, 1e-12, 1e-8, 1e-4, 1e-3, 0.05, 0.2, 1.0, 2 * math.pi / 3]
NEAR_PI = [math.pi - 1e-3, math.pi - 1e-7, math.pi]


def twist(G, a):
    r"""The Lie algebra element of :obj:`a` as a matrix, whose
    :func:`torch.linalg.matrix_exp` is an independent reference for exp."""
    if isinstance(G, (SO2, SE2)):
        W = torch.zeros(a.shape[:-1] + (2, 2), dtype=a.dtype)
        W[..., 0, 1], W[..., 1, 0] = -a[..., 0], a[..., 0]
    else:
        W = hat(a[..., :3])
    if not G.has_translation:
        return W
    n = G.space_dim
    X = torch.zeros(a.shape[:-1] + (n + 1, n + 1), dtype=a.dtype)
    X[..., :n, :n] = W
    X[..., :n, n] = a[..., G.rotation_dim:]
    return X


def rotation_groups():
    return [G for G in GROUPS if G.rotation_dim > 0]


def batch(G, thetas, dtype, device='cpu'):
    return torch.stack([algebra(G, t, dtype, device) for t in thetas])


def test_roundtrip_small_angles(group, dtype, device):
    # All angles of SMALL, both signs, in one batch (rows are independent).
    thetas = SMALL + [-t for t in SMALL]
    a = batch(group, thetas, dtype, device)
    g = group.exp(a)
    check_elements(group, g)
    b = group.log(g)
    assert torch.isfinite(b).all()
    assert_close(b, a, scale=2)
    assert_close(group.exp(b), g, scale=2)


@pytest.mark.parametrize('G', rotation_groups(), ids=ids)
def test_roundtrip_near_pi(G, dtype, device):
    r = G.rotation_dim
    for theta in NEAR_PI:
        a = algebra(G, theta, dtype, device)
        g = G.exp(a)
        b = G.log(g)
        assert torch.isfinite(b).all()
        # exp(log(g)) = g holds even where the logarithm is ambiguous.
        assert_close(G.exp(b), g, scale=10)
        # The rotation part of log has angle at most pi.
        assert b[:r].norm() <= math.pi + 1e-6
        if theta < math.pi and (dtype == torch.float64
                                or math.pi - theta > 1e-4):
            assert_close(b, a, scale=100)
        else:
            # Unresolvable in the dtype: the rotation part is +-omega.
            ok = [torch.allclose(b[:r], s * a[:r], atol=1e-5)
                  for s in (1, -1)]
            assert any(ok), (theta, b, a)


@pytest.mark.parametrize('G', [SO2(), SE2()], ids=ids)
def test_planar_log_range_and_wrap(G, dtype):
    # The angle of log is the representative in (-pi, pi] of theta mod 2pi.
    # (float32 cannot resolve pi - 1e-6 + 2 pi k from the other side of pi.)
    thetas = [0.3, -0.3, 2.0, -2.0]
    if dtype == torch.float64:
        thetas += [math.pi - 1e-6, -math.pi + 1e-6]
    for theta in thetas:
        for k in (-2, -1, 1, 3):
            a = algebra(G, theta + 2 * math.pi * k, torch.float64).to(dtype)
            b = G.log(G.exp(a))
            # a's angle carries the rounding error of |theta + 2 pi k| < 22.
            assert_close(b[0], torch.tensor(theta, dtype=dtype), scale=30)
            assert_close(G.exp(b), G.exp(a), scale=30)
    # Exactly pi: the angle is pi, not -pi.
    g = G.exp(algebra(G, math.pi, torch.float64)).to(dtype)
    assert G.log(g)[0].item() == pytest.approx(math.pi, abs=1e-6)


def test_se2_log_near_zero_and_pi_formula(dtype):
    # Closed form of SE(2) log: u = [[c, h], [-h, c]] t, with
    # c = (theta/2) cot(theta/2), h = theta / 2.
    G = SE2()
    for theta in [0.0, 1e-9, 1e-5, 1e-3, 0.05, 0.1, 0.15, 2.0,
                  math.pi - 1e-6, math.pi]:
        t = torch.tensor([0.7, -1.3], dtype=torch.float64)
        R = SO2().exp(torch.tensor([theta], dtype=torch.float64))
        g = G.from_parts(R, t).to(dtype)
        c = 1.0 if theta == 0 else (theta / 2) / math.tan(theta / 2)
        h = theta / 2
        u = torch.tensor([c * 0.7 + h * -1.3, -h * 0.7 + c * -1.3],
                         dtype=dtype)
        b = G.log(g)
        assert_close(b[0], torch.tensor(theta, dtype=dtype))
        assert_close(b[1:], u, scale=4)


@pytest.mark.parametrize('G', [G for G in RIGID_GROUPS
                               if G.embedding == 'log'], ids=ids)
def test_exp_matches_matrix_exp(G):
    # Reference: the matrix exponential of the algebra element, float64.
    a = torch.randn(64, G.lie_dim, generator=generator('cpu'),
                    dtype=torch.float64)
    a = torch.cat([a * 1.5, a * 1e-3, a * 1e-7])
    assert_close(G.exp(a), torch.linalg.matrix_exp(twist(G, a)), scale=50)


@pytest.mark.parametrize('G', [SO3(), SE3()], ids=ids)
def test_log_matches_scipy_rotvec(G):
    # Reference for the rotation part of log: SciPy's rotation vectors of
    # random rotations (angles in [0, pi]), float64.
    g = G.sample(200, generator=generator('cpu'), dtype=torch.float64)
    R = G.rotation(g)
    ref = torch.as_tensor(Rotation.from_matrix(R.numpy()).as_rotvec())
    assert_close(G.log(g)[:, :3], ref, scale=1e3)


@pytest.mark.parametrize('G', SO3_LIKE, ids=ids)
def test_so3_log_batch_mixes_branches(G, dtype):
    # One batch holding the Taylor, generic and near-pi branches at once
    # must give the same as element by element (no cross-talk of where/
    # gather between the branches).
    thetas = SMALL + [2.5] + NEAR_PI
    a = torch.stack([algebra(G, t, torch.float64) for t in thetas]).to(dtype)
    g = G.exp(a)
    batched = G.log(g)
    single = torch.stack([G.log(gi) for gi in g])
    assert_close(batched, single)
    assert_close(G.exp(batched), g, scale=10)


def test_gradients_finite(group, dtype):
    thetas = SMALL + NEAR_PI
    a = batch(group, thetas, dtype).requires_grad_()
    (grad_log, ) = torch.autograd.grad(group.log(group.exp(a)).sum(), a)
    assert torch.isfinite(grad_log).all()
    g = group.exp(a)
    w = torch.randn(g.shape, generator=generator('cpu'), dtype=dtype)
    (grad_exp, ) = torch.autograd.grad((g * w).sum(), a)
    assert torch.isfinite(grad_exp).all()
    # d log(exp(a)) / da = I wherever log is a smooth inverse of exp (angle
    # below pi, resolvable in the dtype), to the precision of the dtype.
    # Rows are independent, so row i of every block is one gradient.
    keep = [i for i, t in enumerate(thetas)
            if t < math.pi - (1e-8 if dtype == torch.float64 else 1e-4)]
    out = group.log(group.exp(a))
    J = torch.stack([torch.autograd.grad(out[:, i].sum(), a,
                                         retain_graph=True)[0]
                     for i in range(group.lie_dim)], dim=1)
    eye = torch.eye(group.lie_dim, dtype=dtype).expand(len(keep), -1, -1)
    atol = 1e-11 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(J[keep], eye, atol=atol, rtol=0)


# The log-embedding groups: the embedding does not change exp / log.
EXP_LOG_GROUPS = [G for G in GROUPS if getattr(G, 'embedding', 'log') == 'log']


@pytest.mark.parametrize('G', EXP_LOG_GROUPS, ids=ids)
def test_gradcheck(G):
    # Near 0 (series), at the series / closed-form switch 1e-3, generic,
    # at the SO(3) log branch switch 2 pi / 3 and in its near-pi branch.
    thetas = [0.0, 1e-8, 1e-4, 1e-3, 0.7, 2 * math.pi / 3, 3.0]
    a = batch(G, thetas, torch.float64)
    # Move off the fixed axis (except at 0), so that all partials are hit.
    off = torch.tensor([0.3, -0.2, 0.5, 0.1, 0.4, -0.6],
                       dtype=torch.float64)[:G.lie_dim]
    scale = torch.tensor([0.0] + [1e-2 * min(t, 1) for t in thetas[1:]],
                         dtype=torch.float64)
    a = (a + scale[:, None] * off).requires_grad_()
    assert torch.autograd.gradcheck(G.exp, (a, ))
    assert torch.autograd.gradcheck(lambda a: G.log(G.exp(a)), (a, ))
    # log itself, as a function of the (perturbed) matrix entries.
    g = G.exp(a.detach()).requires_grad_()
    assert torch.autograd.gradcheck(G.log, (g, ))

