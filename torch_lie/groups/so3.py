from typing import Optional

import torch
from torch import Tensor

from torch_lie.groups.rigid import RotationGroup
from torch_lie.groups.rotations import random_so3, random_so3_to, so3_exp, so3_log


class SO3(RotationGroup):
    r"""The rotation group :math:`SO(3)` acting on :math:`\mathbb{R}^3`.

    Elements are rotation matrices :obj:`[..., 3, 3]`; log coordinates are
    axis-angle vectors :math:`\theta n`, :math:`\theta \in [0, \pi]`. A point
    :math:`x` lifts to random rotations :math:`R` with :math:`R e_1 = x /
    |x|` (uniform over the stabiliser of :math:`e_1`; invariant in
    distribution) and carries :math:`q = |x|`. A point at the origin, whose
    stabiliser is all of :math:`SO(3)`, lifts to Haar-random rotations with
    :math:`q = 0`.

    Args:
        embedding (str, optional): :obj:`"log"` (axis-angle, discontinuous at
            angle :math:`\pi`) or :obj:`"matrix"` (the 9 rotation entries,
            continuous) pair embedding. (default: :obj:`"log"`)
    """
    lie_dim = rotation_dim = 3
    space_dim = 3

    def exp(self, a: Tensor) -> Tensor:
        return so3_exp(a)

    def log(self, g: Tensor) -> Tensor:
        return so3_log(g)

    def random_rotation(self, num, generator, dtype, device):
        return random_so3(num, generator, dtype, device)

    def _lift(self, pos: Tensor, num_samples: int,
              generator: Optional[torch.Generator]) -> Tensor:
        d, at_origin = self.directions(pos)
        d = d.repeat_interleave(num_samples, dim=0)
        at_origin = at_origin.repeat_interleave(num_samples, dim=0)
        rand = torch.randn(d.shape, generator=generator, dtype=d.dtype,
                           device=d.device)
        rand = rand / rand.norm(dim=-1, keepdim=True)
        d = torch.where(at_origin[:, None], rand, d)
        return random_so3_to(d, generator)
