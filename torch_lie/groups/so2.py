from typing import Optional

import torch
from torch import Tensor

from torch_lie.groups.rigid import RotationGroup
from torch_lie.groups.rotations import (
    random_so2_angle,
    so2_angle,
    so2_matrix,
    so2_relative_angle,
)


class SO2(RotationGroup):
    r"""The rotation group :math:`SO(2)` acting on :math:`\mathbb{R}^2`.

    Elements are rotation matrices :obj:`[..., 2, 2]`; the log coordinate is
    the angle in :math:`(-\pi, \pi]`. A point :math:`x \neq 0` lifts to the
    unique rotation taking :math:`e_1` to :math:`x / |x|` (deterministic,
    exactly invariant) and carries :math:`q = |x|`.

    A point at the origin has no angle: it lifts to the identity with
    :math:`q = 0` (finite values and zero gradients). Such an input is
    invariant only up to that point's own lifted element.

    Args:
        embedding (str, optional): :obj:`"log"` or :obj:`"matrix"` pair
            embedding. (default: :obj:`"log"`)
    """
    lie_dim = rotation_dim = 1
    space_dim = 2
    deterministic = True

    def exp(self, a: Tensor) -> Tensor:
        return so2_matrix(a[..., 0])

    def log(self, g: Tensor) -> Tensor:
        return so2_angle(g)[..., None]

    def embed(self, g: Tensor) -> Tensor:
        if self.embedding != 'log':
            return super().embed(g)
        return so2_relative_angle(g)[..., None]

    def random_rotation(self, num, generator, dtype, device):
        return so2_matrix(random_so2_angle(num, generator, dtype, device))

    def _lift(self, pos: Tensor, num_samples: int,
              generator: Optional[torch.Generator]) -> Tensor:
        d, at_origin = self.directions(pos)
        c = torch.where(at_origin, 1.0, d[:, 0])
        s = torch.where(at_origin, 0.0, d[:, 1])
        return torch.stack([torch.stack([c, -s], -1),
                            torch.stack([s, c], -1)], -2)
