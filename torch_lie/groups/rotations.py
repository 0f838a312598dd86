r"""Batched functions on rotation matrices in two and three dimensions."""
import math
from typing import Optional

import torch
from torch import Tensor

from torch_lie.groups._taylor import (
    one_minus_cos_over_sq,
    safe_norm,
    sinc,
    theta_over_sin,
)


def so2_matrix(theta: Tensor) -> Tensor:
    r"""Rotation matrices :obj:`[..., 2, 2]` of angles :obj:`theta [...]`."""
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def so2_angle(R: Tensor) -> Tensor:
    r"""Angles in :math:`(-\pi, \pi]` of rotation matrices :obj:`[..., 2, 2]`."""
    return torch.atan2(R[..., 1, 0], R[..., 0, 0])


def so2_relative_angle(R: Tensor) -> Tensor:
    r"""Angles of relative rotations in :math:`(-\pi + \epsilon, \pi +
    \epsilon]`, :math:`\epsilon = \sqrt{\mathrm{eps}}`.

    Relative rotations of exactly :math:`\pi` are common in lifted sets
    (antipodal points about the origin for :math:`SO(2)`, samples
    :math:`s` and :math:`s + S/2` of even stratified :math:`SE(2)` lifts,
    :math:`T(2) \rtimes C_k` for even :math:`k`); moving the branch cut off
    :math:`\pi` keeps rounding noise from flipping them to :math:`-\pi`.
    """
    theta = so2_angle(R)
    eps = torch.finfo(theta.dtype).eps ** 0.5
    return torch.where(theta <= eps - math.pi, theta + 2 * math.pi, theta)


def hat(omega: Tensor) -> Tensor:
    r"""Skew-symmetric matrices :math:`[\omega]_\times` of :obj:`[..., 3]`."""
    x, y, z = omega.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([
        torch.stack([o, -z, y], -1),
        torch.stack([z, o, -x], -1),
        torch.stack([-y, x, o], -1),
    ], -2)


def vee(W: Tensor) -> Tensor:
    r"""Inverse of :func:`hat` on the antisymmetric part of :obj:`W`."""
    return 0.5 * torch.stack([
        W[..., 2, 1] - W[..., 1, 2],
        W[..., 0, 2] - W[..., 2, 0],
        W[..., 1, 0] - W[..., 0, 1],
    ], -1)


def so3_exp(omega: Tensor) -> Tensor:
    r"""Rodrigues' formula: rotation matrices of axis-angle vectors."""
    theta = safe_norm(omega)[..., None, None]
    W = hat(omega)
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device)
    return eye + sinc(theta) * W + one_minus_cos_over_sq(theta) * (W @ W)


def so3_log(R: Tensor) -> Tensor:
    r"""Axis-angle vectors :math:`\theta n`, :math:`\theta \in [0, \pi]`, of
    rotation matrices.

    The usual formula :math:`\omega = \frac{\theta}{\sin\theta}
    \mathrm{vee}(R)` divides by :math:`\sin\theta \to 0` at :math:`\theta \to
    \pi`; there the axis is read instead from the symmetric part
    :math:`(R + R^\top)/2 - \cos\theta\, I = (1 - \cos\theta)\, n n^\top`,
    with its sign taken from :math:`\mathrm{vee}(R) = \sin\theta\, n`. At
    exactly :math:`\pi` the sign is arbitrary (both are valid logarithms).
    """
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    w = vee(R)
    theta = torch.atan2(safe_norm(w), cos)

    near_pi = cos < -0.5  # theta > 2 pi / 3, where sin theta < 0.87
    generic = w * theta_over_sin(torch.where(near_pi, 0.0, theta))[..., None]

    one_minus_cos = torch.where(near_pi, 1 - cos, 1.0)[..., None, None]
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    nnT = (0.5 * (R + R.transpose(-1, -2)) - cos[..., None, None] * eye)
    nnT = nnT / one_minus_cos
    diag = nnT.diagonal(dim1=-2, dim2=-1)
    k = diag.argmax(-1, keepdim=True)  # largest |n_k|, at least 1/sqrt(3)
    col = nnT.gather(-1, k[..., None].expand(*nnT.shape[:-1], 1))[..., 0]
    n_k_sq = torch.where(near_pi, diag.gather(-1, k)[..., 0], 1.0)
    n = col / n_k_sq.sqrt()[..., None]
    sign = torch.where((n * w).sum(-1) < 0, -1.0, 1.0)
    axial = n * (sign * theta)[..., None]
    return torch.where(near_pi[..., None], axial, generic)


def quaternion_to_matrix(quat: Tensor) -> Tensor:
    r"""Rotation matrices of (not necessarily unit) quaternions
    :obj:`[..., 4]` in :obj:`(w, x, y, z)` order."""
    quat = quat / safe_norm(quat, keepdim=True)
    w, x, y, z = quat.unbind(-1)
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w),
                     2 * (x * z + y * w)], -1),
        torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z),
                     2 * (y * z - x * w)], -1),
        torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w),
                     1 - 2 * (x * x + y * y)], -1),
    ], -2)


def random_so2_angle(num: int, generator: Optional[torch.Generator] = None,
                     dtype: Optional[torch.dtype] = None,
                     device: Optional[torch.device] = None) -> Tensor:
    r"""Haar-random angles in :math:`[-\pi, \pi)`."""
    u = torch.rand(num, generator=generator, dtype=dtype, device=device)
    return (2 * u - 1) * math.pi


def random_so3(num: int, generator: Optional[torch.Generator] = None,
               dtype: Optional[torch.dtype] = None,
               device: Optional[torch.device] = None) -> Tensor:
    r"""Haar-random rotation matrices (normalised Gaussian quaternions)."""
    quat = torch.randn(num, 4, generator=generator, dtype=dtype, device=device)
    return quaternion_to_matrix(quat)


def random_so3_to(direction: Tensor,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    r"""Random rotations :math:`R` with :math:`R e_1 = d` for unit vectors
    :obj:`direction [N, 3]`, uniform on that coset of the stabiliser of
    :math:`e_1`.

    The second column is an isotropic Gaussian vector projected orthogonally
    to :math:`d` and normalised, hence uniform on the circle of unit vectors
    orthogonal to :math:`d`; the third completes a right-handed frame.
    """
    w = torch.randn(direction.shape, generator=generator,
                    dtype=direction.dtype, device=direction.device)
    b2 = w - (w * direction).sum(-1, keepdim=True) * direction
    b2 = b2 / safe_norm(b2, keepdim=True)
    b3 = torch.linalg.cross(direction, b2, dim=-1)
    return torch.stack([direction, b2, b3], dim=-1)


def so3_quaternion(R: Tensor) -> Tensor:
    r"""Unit quaternions :math:`(w, x, y, z)` with :math:`w \geq 0` of
    rotation matrices :obj:`[..., 3, 3]`, :obj:`[..., 4]`. Each is computed
    from its largest component (Shepperd's method), so values and gradients
    stay finite, also at the identity."""
    m = R.flatten(-2)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    t = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                     1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    rows = torch.stack([
        torch.stack([t[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, t[..., 1], m10 + m01, m02 + m20], -1),
        torch.stack([m02 - m20, m10 + m01, t[..., 2], m21 + m12], -1),
        torch.stack([m10 - m01, m02 + m20, m21 + m12, t[..., 3]], -1),
    ], -2)  # row k is 4 q_k q
    # Clamped so that the rows not chosen stay finite (and their zero
    # gradients too).
    scale = 2 * t.clamp(min=torch.finfo(R.dtype).eps).sqrt()
    best = t.argmax(-1, keepdim=True)
    q = (rows / scale[..., None]).gather(
        -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)
    return torch.where(q[..., :1] < 0, -q, q)
