r"""Coefficient functions of the exponential and logarithm maps, stable at zero.

Each function evaluates its closed form away from :math:`\theta = 0` and a
Taylor series near it. The closed form is fed a safe argument inside the
series region, so that no NaN reaches the gradient through the branch that
:func:`torch.where` discards.
"""
from collections.abc import Callable

import torch
from torch import Tensor


def _threshold(theta: Tensor) -> float:
    # Series truncated after theta^4: the error is O(theta^6), so the switch
    # point is chosen per precision where both branches are accurate.
    return 1e-3 if theta.dtype == torch.float64 else 1e-1


def _stable(
    theta: Tensor,
    closed: Callable[[Tensor], Tensor],
    c0: float,
    c2: float,
    c4: float,
) -> Tensor:
    small = theta.abs() < _threshold(theta)
    safe = torch.where(small, torch.ones_like(theta), theta)
    t2 = theta * theta
    return torch.where(small, c0 + t2 * (c2 + t2 * c4), closed(safe))


def sinc(theta: Tensor) -> Tensor:
    r""":math:`\sin\theta / \theta`."""
    return _stable(theta, lambda t: torch.sin(t) / t, 1.0, -1 / 6, 1 / 120)


def one_minus_cos_over_sq(theta: Tensor) -> Tensor:
    r""":math:`(1 - \cos\theta) / \theta^2`."""
    return _stable(theta, lambda t: 2 * torch.sin(t / 2)**2 / (t * t), 0.5,
                   -1 / 24, 1 / 720)


def theta_minus_sin_over_cube(theta: Tensor) -> Tensor:
    r""":math:`(\theta - \sin\theta) / \theta^3`."""
    return _stable(theta, lambda t: (t - torch.sin(t)) / t**3, 1 / 6,
                   -1 / 120, 1 / 5040)


def theta_over_sin(theta: Tensor) -> Tensor:
    r""":math:`\theta / \sin\theta`, for :math:`|\theta| < \pi`."""
    return _stable(theta, lambda t: t / torch.sin(t), 1.0, 1 / 6, 7 / 360)


def half_cot_half(theta: Tensor) -> Tensor:
    r""":math:`(\theta / 2) \cot(\theta / 2)`, the SE(2) inverse-Jacobian
    coefficient."""
    return _stable(theta, lambda t: (t / 2) / torch.tan(t / 2), 1.0, -1 / 12,
                   -1 / 720)


def se3_inverse_jacobian_coeff(theta: Tensor) -> Tensor:
    r""":math:`\theta^{-2}\,(1 - \frac{\theta \sin\theta}{2 (1 - \cos\theta)})`,
    the coefficient of :math:`W^2` in the inverse left Jacobian of SO(3)."""
    return _stable(theta, lambda t: (1 - half_cot_half(t)) / (t * t), 1 / 12,
                   1 / 720, 1 / 30240)


def safe_norm(v: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    r"""Euclidean norm whose gradient at the zero vector is zero, not NaN."""
    sq = (v * v).sum(dim=dim, keepdim=keepdim)
    pos = sq > 0
    return torch.where(pos, torch.where(pos, sq, 1.0).sqrt(), 0.0)
