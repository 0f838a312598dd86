r"""Coefficient functions of the exponential and logarithm maps, stable at zero.

Each function evaluates its closed form away from :math:`\theta = 0` and a
Taylor series near it. The closed form is fed a safe argument inside the
series region, so that no NaN reaches the gradient through the branch that
:func:`torch.where` discards.
"""
from typing import Callable, Tuple

import torch
from torch import Tensor

#: Where each function switches from its series to its closed form, per
#: precision (float64, lower). The series, truncated after :math:`\theta^4`
#: (error :math:`O(\theta^6)`), and the closed form are both accurate there.
SWITCH = (1e-3, 1e-1)
#: Closed forms that cancel to :math:`O(\theta^3)` lose digits near zero, so
#: they switch later, with the series carried to :math:`\theta^6`.
LATE_SWITCH = (4e-2, 4e-1)


def _stable(
    theta: Tensor,
    closed: Callable[[Tensor], Tensor],
    series: Tuple[float, ...],
    switch: Tuple[float, float] = SWITCH,
) -> Tensor:
    small = theta.abs() < switch[theta.dtype != torch.float64]
    safe = torch.where(small, torch.ones_like(theta), theta)
    t2 = theta * theta
    poly = torch.full_like(theta, series[-1])
    for c in reversed(series[:-1]):  # Horner in theta^2
        poly = c + t2 * poly
    return torch.where(small, poly, closed(safe))


def sinc(theta: Tensor) -> Tensor:
    r""":math:`\sin\theta / \theta`."""
    return _stable(theta, lambda t: torch.sin(t) / t, (1.0, -1 / 6, 1 / 120))


def one_minus_cos_over_sq(theta: Tensor) -> Tensor:
    r""":math:`(1 - \cos\theta) / \theta^2`."""
    return _stable(theta, lambda t: 2 * torch.sin(t / 2)**2 / (t * t),
                   (0.5, -1 / 24, 1 / 720))


def theta_minus_sin_over_cube(theta: Tensor) -> Tensor:
    r""":math:`(\theta - \sin\theta) / \theta^3`."""
    return _stable(theta, lambda t: (t - torch.sin(t)) / t**3,
                   (1 / 6, -1 / 120, 1 / 5040, -1 / 362880), LATE_SWITCH)


def theta_over_sin(theta: Tensor) -> Tensor:
    r""":math:`\theta / \sin\theta`, for :math:`|\theta| < \pi`."""
    return _stable(theta, lambda t: t / torch.sin(t), (1.0, 1 / 6, 7 / 360))


def half_cot_half(theta: Tensor) -> Tensor:
    r""":math:`(\theta / 2) \cot(\theta / 2)`, the SE(2) inverse-Jacobian
    coefficient."""
    return _stable(theta, lambda t: (t / 2) / torch.tan(t / 2),
                   (1.0, -1 / 12, -1 / 720))


def se3_inverse_jacobian_coeff(theta: Tensor) -> Tensor:
    r""":math:`\theta^{-2}\,(1 - \frac{\theta \sin\theta}{2 (1 - \cos\theta)})`,
    the coefficient of :math:`W^2` in the inverse left Jacobian of SO(3)."""
    return _stable(theta, lambda t: (1 - half_cot_half(t)) / (t * t),
                   (1 / 12, 1 / 720, 1 / 30240, 1 / 1209600), LATE_SWITCH)


def safe_norm(v: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    r"""Euclidean norm whose gradient at the zero vector is zero, not NaN
    (a NaN vector keeps a NaN norm)."""
    sq = (v * v).sum(dim=dim, keepdim=keepdim)
    pos = sq > 0
    return torch.where(pos, torch.where(pos, sq, 1.0).sqrt(), sq * 0.0)
