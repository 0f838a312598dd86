from typing import Optional

import torch
from torch import Tensor

from torch_lie.groups._taylor import (
    one_minus_cos_over_sq,
    safe_norm,
    se3_inverse_jacobian_coeff,
    theta_minus_sin_over_cube,
)
from torch_lie.groups.rigid import RigidMotionGroup
from torch_lie.groups.rotations import (
    hat,
    random_so3,
    so3_exp,
    so3_log,
    so3_quaternion,
)


class SE3(RigidMotionGroup):
    r"""The rigid-motion group :math:`SE(3)` acting on :math:`\mathbb{R}^3`.

    Elements are homogeneous matrices :obj:`[..., 4, 4]`; log coordinates
    are :math:`(\omega, u)`, axis-angle rotation first. A point :math:`x`
    lifts to :math:`T(x) R` with Haar-random :math:`R` (invariant in
    distribution).

    Args:
        embedding (str, optional): :obj:`"log"` (6 coordinates,
            discontinuous at rotation angle :math:`\pi`), :obj:`"matrix"`
            (the 9 rotation entries and 3 translation entries, continuous)
            or :obj:`"quaternion"` (the rotation's unit quaternion with
            :math:`w \geq 0` and the translation, 7 coordinates, as the
            paper's QM9 model) pair embedding. (default: :obj:`"log"`)
    """
    lie_dim = 6
    rotation_dim = 3
    space_dim = 3
    has_translation = True
    embeddings = RigidMotionGroup.embeddings + ('quaternion', )

    @property
    def embed_dim(self) -> int:
        return 7 if self.embedding == 'quaternion' else super().embed_dim

    def embed(self, g: Tensor) -> Tensor:
        if self.embedding != 'quaternion':
            return super().embed(g)
        return torch.cat([so3_quaternion(self.rotation(g)),
                          self.translation(g)], dim=-1)

    def exp(self, a: Tensor) -> Tensor:
        omega, u = a[..., :3], a[..., 3:]
        theta = safe_norm(omega)[..., None, None]
        W = hat(omega)
        eye = torch.eye(3, dtype=a.dtype, device=a.device)
        V = (eye + one_minus_cos_over_sq(theta) * W +
             theta_minus_sin_over_cube(theta) * (W @ W))
        return self.from_parts(so3_exp(omega), (V @ u[..., None])[..., 0])

    def log(self, g: Tensor) -> Tensor:
        omega = so3_log(self.rotation(g))
        theta = safe_norm(omega)[..., None, None]
        W = hat(omega)
        eye = torch.eye(3, dtype=g.dtype, device=g.device)
        V_inv = eye - 0.5 * W + se3_inverse_jacobian_coeff(theta) * (W @ W)
        u = (V_inv @ self.translation(g)[..., None])[..., 0]
        return torch.cat([omega, u], dim=-1)

    def random_rotation(self, num, generator, dtype, device):
        return random_so3(num, generator, dtype, device)

    def _lift(self, pos: Tensor, num_samples: int,
              generator: Optional[torch.Generator]) -> Tensor:
        R = random_so3(pos.size(0) * num_samples, generator, pos.dtype,
                       pos.device)
        return self.from_parts(R, pos.repeat_interleave(num_samples, dim=0))
