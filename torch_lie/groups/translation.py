from typing import Optional

import torch
from torch import Tensor

from torch_lie.groups.group import Group
from torch_lie.utils.checks import check_int


class T(Group):
    r"""The translation group :math:`T(n)` acting on :math:`\mathbb{R}^n`.

    Elements are stored as translation vectors :obj:`[..., n]` (the group is
    abelian, so composition is addition and :math:`\exp`, :math:`\log` are
    the identity). Each point lifts to the single translation that moves the
    origin onto it, so the lift is deterministic and the pair embedding
    :math:`\log(u^{-1} v) = x_v - x_u` makes models exactly invariant to
    translations.

    Args:
        n (int): Dimension of the space. (default: :obj:`3`)
    """
    rotation_dim = 0
    deterministic = True

    def __init__(self, n: int = 3):
        n = check_int('n', n)
        self.lie_dim = self.space_dim = n

    def exp(self, a: Tensor) -> Tensor:
        return a.clone()

    def log(self, g: Tensor) -> Tensor:
        return g.clone()

    def inv(self, g: Tensor) -> Tensor:
        return -g

    def compose(self, g: Tensor, h: Tensor) -> Tensor:
        return g + h

    def act(self, g: Tensor, pos: Tensor) -> Tensor:
        return pos + g

    def sample(self, num: int, generator: Optional[torch.Generator] = None,
               dtype: Optional[torch.dtype] = None,
               device: Optional[torch.device] = None) -> Tensor:
        return torch.randn(num, self.space_dim, generator=generator,
                           dtype=dtype, device=device)

    def _lift(self, pos: Tensor, num_samples: int,
              generator: Optional[torch.Generator]) -> Tensor:
        return pos

    def __repr__(self) -> str:
        return f'T({self.space_dim})'


class Trivial(T):
    r"""A non-invariant baseline with the interface of :class:`T`: the pair
    embedding is the concatenation :math:`[x_u, x_v]` of absolute positions,
    so models see where points are. Useful as the negative control of
    invariance tests and as the reference's "trivial group" baseline.

    Args:
        n (int): Dimension of the space. (default: :obj:`3`)
    """
    @property
    def edge_dim(self) -> int:
        return 2 * self.space_dim

    def pair_embedding(self, g_u: Tensor, g_v: Tensor,
                       q_u: Optional[Tensor] = None,
                       q_v: Optional[Tensor] = None) -> Tensor:
        return torch.cat(torch.broadcast_tensors(g_u, g_v), dim=-1)

    def __repr__(self) -> str:
        return f'Trivial({self.space_dim})'
