r"""The stable coefficient functions of ``_taylor.py`` against 150-digit
mpmath values, on both sides of their series / closed-form switch."""
import math

import mpmath
import pytest
import torch
from _groups_util import ids

from torch_lie.groups import _taylor

mpmath.mp.dps = 150  # enough for (1 - cos t) / t^2 at t = 1e-30

# name: (high-precision closed form, value at 0)
REFERENCE = {
    'sinc': (lambda t: mpmath.sin(t) / t, 1.0),
    'one_minus_cos_over_sq': (lambda t: (1 - mpmath.cos(t)) / t**2, 0.5),
    'theta_minus_sin_over_cube':
    (lambda t: (t - mpmath.sin(t)) / t**3, 1 / 6),
    'theta_over_sin': (lambda t: t / mpmath.sin(t), 1.0),
    'half_cot_half': (lambda t: (t / 2) / mpmath.tan(t / 2), 1.0),
    'se3_inverse_jacobian_coeff':
    (lambda t: (1 - t * mpmath.sin(t) / (2 * (1 - mpmath.cos(t)))) / t**2,
     1 / 12),
}
# Closed forms that cancel catastrophically as theta -> 0: just above the
# switch their relative error grows like eps / theta^2, and that of their
# autograd derivative like eps / theta^4, so they switch later (LATE_SWITCH).
CANCELLING = {'theta_minus_sin_over_cube', 'se3_inverse_jacobian_coeff'}


def threshold(dtype, name):
    switch = _taylor.LATE_SWITCH if name in CANCELLING else _taylor.SWITCH
    return switch[dtype != torch.float64]


def points(dtype, name):
    thr = threshold(dtype, name)
    return [1e-30, 1e-12, 1e-6, thr / 2, thr * (1 - 1e-6), thr,
            thr * (1 + 1e-6), thr * 2, 0.3, 1.0, 2.0, 3.0]


def reference(name, ts, derivative=False):
    f = REFERENCE[name][0]
    out = []
    for t in ts:
        t = mpmath.mpf(t)
        out.append(float(mpmath.diff(f, t) if derivative else f(t)))
    return torch.tensor(out, dtype=torch.float64)


def rel_bound(name, ts, dtype, derivative=False):
    r"""Relative error allowed at :obj:`ts`: a few ulps, plus, on the
    closed-form side of the switch, the cancellation error of the closed
    form, which grows like eps / t^p as t -> 0."""
    eps = torch.finfo(dtype).eps
    bound = torch.full((len(ts), ), 8 * eps, dtype=torch.float64)
    if derivative:
        p = 4 if name in CANCELLING else 2
    elif name in CANCELLING:
        p = 2
    else:
        return bound  # accurate closed form and series truncated at O(t^6)
    t = torch.tensor(ts, dtype=torch.float64)
    closed = t >= threshold(dtype, name)
    # The series side: the derivative of the truncated series misses
    # 6 c6 t^5, |c6| <= 31 / 15120 (theta / sin theta).
    truncation = 0.015 * t**4 if derivative else 0.0
    return torch.where(closed, bound + 32 * eps / t**p, bound + truncation)


@pytest.mark.parametrize('name', list(REFERENCE))
def test_thresholds(name):
    # Per precision; the tests below probe both sides of whatever the
    # switch is.
    t64, t32 = threshold(torch.float64, name), threshold(torch.float32, name)
    assert 0 < t64 < t32 <= 0.5


@pytest.mark.parametrize('name', list(REFERENCE))
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64], ids=ids)
def test_values(name, dtype):
    f = getattr(_taylor, name)
    ts = points(dtype, name)
    x = torch.tensor(ts, dtype=torch.float64).to(dtype)
    ts = x.double().tolist()  # the points as they are represented
    value = f(x).double()
    ref = reference(name, ts)
    rel = ((value - ref) / ref).abs()
    assert (rel <= rel_bound(name, ts, dtype)).all(), (rel, ts)
    # Even functions; exact value at zero; no NaN.
    assert torch.equal(f(-x), f(x))
    zero = f(torch.zeros(3, dtype=dtype))
    assert torch.equal(zero, torch.full_like(zero, REFERENCE[name][1]))


@pytest.mark.parametrize('name', list(REFERENCE))
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64], ids=ids)
def test_derivatives(name, dtype):
    f = getattr(_taylor, name)
    ts = [t for t in points(dtype, name) if t >= 1e-6]
    x = torch.tensor(ts, dtype=dtype, requires_grad=True)
    ts = x.detach().double().tolist()
    (grad, ) = torch.autograd.grad(f(x).sum(), x)
    ref = reference(name, ts, derivative=True)
    # Relative to the scale of the function (the derivative -> 0 at 0).
    scale = reference(name, ts).abs() * torch.tensor(ts).clamp(min=1e-3)
    err = (grad.double() - ref).abs() / scale
    assert (err <= rel_bound(name, ts, dtype, derivative=True)).all(), (
        err, ts)
    # At 0 the gradient is exactly 0, not NaN.
    z = torch.zeros(2, dtype=dtype, requires_grad=True)
    (grad0, ) = torch.autograd.grad(f(z).sum(), z)
    assert torch.equal(grad0, torch.zeros_like(grad0))


@pytest.mark.parametrize('name', list(REFERENCE))
def test_continuous_at_switch(name):
    # Both branches agree where they meet (float64).
    f = getattr(_taylor, name)
    thr = threshold(torch.float64, name)
    below = f(torch.tensor(thr * (1 - 1e-12), dtype=torch.float64))
    above = f(torch.tensor(thr, dtype=torch.float64))
    assert abs((above - below).item()) <= 1e-8 * abs(below.item())


def test_theta_over_sin_stays_finite_below_pi():
    x = torch.tensor([math.pi - 1e-3, math.pi - 1e-7], dtype=torch.float64)
    v = _taylor.theta_over_sin(x)
    assert torch.isfinite(v).all()
    assert v[0].item() == pytest.approx((math.pi - 1e-3) / math.sin(1e-3),
                                        rel=1e-9)


def test_half_cot_half_at_pi():
    # The SE(2) / SE(3) log uses it up to theta = pi, where it vanishes.
    x = torch.tensor([math.pi, -math.pi], dtype=torch.float64,
                     requires_grad=True)
    v = _taylor.half_cot_half(x)
    assert v.abs().max() < 1e-15
    (g, ) = torch.autograd.grad(v.sum(), x)
    # d/dt (t/2) cot(t/2) = cot(t/2)/2 - t / (4 sin^2(t/2)) = -pi/4 at pi.
    torch.testing.assert_close(g, torch.tensor([-math.pi / 4, math.pi / 4],
                                               dtype=torch.float64))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64], ids=ids)
def test_safe_norm(dtype):
    v = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1e-20, 0.0]], dtype=dtype,
                     requires_grad=True)
    n = _taylor.safe_norm(v)
    torch.testing.assert_close(n, torch.tensor([5.0, 0.0, 1e-20],
                                               dtype=dtype))
    (g, ) = torch.autograd.grad(n.sum(), v)
    # Gradient v / |v|, and 0 (not NaN) at the zero vector.
    torch.testing.assert_close(g, torch.tensor([[0.6, 0.8], [0.0, 0.0],
                                                [1.0, 0.0]], dtype=dtype))
    assert _taylor.safe_norm(v, keepdim=True).shape == (3, 1)
    assert _taylor.safe_norm(v, dim=0).shape == (2, )
