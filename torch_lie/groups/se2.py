import math
from typing import Optional

import torch
from torch import Tensor

from torch_lie.groups._taylor import half_cot_half, one_minus_cos_over_sq, sinc
from torch_lie.groups.rigid import RigidMotionGroup
from torch_lie.groups.rotations import (
    random_so2_angle,
    so2_angle,
    so2_matrix,
    so2_relative_angle,
)
from torch_lie.utils.checks import check_int


class SE2(RigidMotionGroup):
    r"""The rigid-motion group :math:`SE(2)` acting on :math:`\mathbb{R}^2`,
    or its discrete subgroup :math:`T(2) \rtimes C_k`.

    Elements are homogeneous matrices :obj:`[..., 3, 3]`; log coordinates
    are :math:`(\theta, u_1, u_2)`. A point :math:`x` lifts to
    :math:`T(x) R(\theta_s)`:

    * :obj:`num_rotations=None`: :math:`SE(2)`, with :obj:`num_samples`
      stratified angles :math:`\theta_s = 2\pi (s + \epsilon) / S`, one
      uniform offset :math:`\epsilon` per point (random: invariant in
      distribution).
    * :obj:`num_rotations=k`: :math:`T(2) \rtimes C_k`, all :math:`k` angles
      :math:`2\pi s / k` (deterministic: exactly invariant to translations
      and rotations by multiples of :math:`2\pi / k`).
      :meth:`~torch_lie.groups.Group.sample` then draws elements of this
      subgroup.

    Args:
        num_rotations (int, optional): Order :math:`k` of the discrete
            rotation subgroup. (default: :obj:`None`)
        embedding (str, optional): :obj:`"log"` or :obj:`"matrix"` pair
            embedding, or for :math:`T(2) \rtimes C_k` :obj:`"canonical"`:
            the translation of :math:`u^{-1} v` and its rotation index
            :math:`(r_v - r_u) \bmod k`, :math:`[R(-\theta_u)(x_v - x_u),
            (r_v - r_u) \bmod k]` (the original implementation's
            :obj:`SE2_canonical`). (default: :obj:`"log"`)
    """
    lie_dim = 3
    rotation_dim = 1
    space_dim = 2
    has_translation = True
    embeddings = RigidMotionGroup.embeddings + ('canonical', )

    def __init__(self, num_rotations: Optional[int] = None,
                 embedding: str = 'log'):
        super().__init__(embedding)
        if num_rotations is not None:
            num_rotations = check_int('num_rotations', num_rotations)
        if embedding == 'canonical' and num_rotations is None:
            raise ValueError("The 'canonical' embedding indexes the rotations "
                             "of T(2) x C_k: it needs 'num_rotations'")
        self.num_rotations = num_rotations
        self.deterministic = num_rotations is not None

    def exp(self, a: Tensor) -> Tensor:
        theta, u = a[..., 0], a[..., 1:]
        A, B = sinc(theta), theta * one_minus_cos_over_sq(theta)
        V = torch.stack([torch.stack([A, -B], -1),
                         torch.stack([B, A], -1)], -2)
        return self.from_parts(so2_matrix(theta), (V @ u[..., None])[..., 0])

    def log(self, g: Tensor) -> Tensor:
        return self._log(so2_angle(self.rotation(g)), self.translation(g))

    @staticmethod
    def _log(theta: Tensor, t: Tensor) -> Tensor:
        c, h = half_cot_half(theta), theta / 2
        V_inv = torch.stack([torch.stack([c, h], -1),
                             torch.stack([-h, c], -1)], -2)
        u = (V_inv @ t[..., None])[..., 0]
        return torch.cat([theta[..., None], u], dim=-1)

    @property
    def embed_dim(self) -> int:
        return 3 if self.embedding == 'canonical' else super().embed_dim

    def embed(self, g: Tensor) -> Tensor:
        if self.embedding == 'canonical':
            step = 2 * math.pi / self.num_rotations
            index = torch.round(so2_angle(self.rotation(g)) / step)
            index = torch.remainder(index, self.num_rotations)
            return torch.cat([self.translation(g), index[..., None]], dim=-1)
        if self.embedding != 'log':
            return super().embed(g)
        return self._log(so2_relative_angle(self.rotation(g)),
                         self.translation(g))

    def random_rotation(self, num, generator, dtype, device):
        if self.num_rotations is None:
            return so2_matrix(random_so2_angle(num, generator, dtype, device))
        m = torch.randint(self.num_rotations, (num, ), generator=generator,
                          device=device)
        return self._cyclic(m, dtype or torch.get_default_dtype())

    def _cyclic(self, m: Tensor, dtype: torch.dtype) -> Tensor:
        # Angles in float64 so that rotating by 2 pi / k maps the lifted
        # elements onto each other to the last bit.
        angle = (2 * math.pi / self.num_rotations) * m.to(torch.float64)
        return so2_matrix(angle).to(dtype)

    def lift_size(self, num_samples: int = 1) -> int:
        self._check_num_samples(num_samples)
        return self.num_rotations or num_samples

    def _lift(self, pos: Tensor, num_samples: int,
              generator: Optional[torch.Generator]) -> Tensor:
        N = pos.size(0)
        if self.num_rotations is not None:
            s = torch.arange(self.num_rotations, device=pos.device)
            R = self._cyclic(s, pos.dtype).repeat(N, 1, 1)
        else:
            offset = torch.rand(N, 1, generator=generator, dtype=pos.dtype,
                                device=pos.device)
            s = torch.arange(num_samples, dtype=pos.dtype, device=pos.device)
            theta = (2 * math.pi / num_samples) * (s + offset)
            R = so2_matrix(theta.flatten())
        t = pos.repeat_interleave(self.lift_size(num_samples), dim=0)
        return self.from_parts(R, t)

    def __repr__(self) -> str:
        args = []
        if self.num_rotations is not None:
            args.append(f'num_rotations={self.num_rotations}')
        if self.embedding != 'log':
            args.append(f"embedding='{self.embedding}'")
        return f"SE2({', '.join(args)})"
