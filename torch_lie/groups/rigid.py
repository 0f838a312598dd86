from typing import Optional, Tuple

import torch
from torch import Tensor

from torch_lie.groups._taylor import safe_norm
from torch_lie.groups.group import Group
from torch_lie.utils.checks import check_choice

EMBEDDINGS = ('log', 'matrix')


class RigidMotionGroup(Group):
    r"""Base class of the rotation groups :math:`SO(n)` (elements are
    rotation matrices :obj:`[..., n, n]`) and the rigid-motion groups
    :math:`SE(n)` (homogeneous matrices :obj:`[..., n+1, n+1]`).

    Args:
        embedding (str, optional): Coordinates of :math:`u^{-1} v` in the
            pair embedding: :obj:`"log"` (Lie algebra coordinates, as in the
            paper; discontinuous where the rotation angle crosses
            :math:`\pi`) or :obj:`"matrix"` (the entries of the rotation
            block and the translation: continuous everywhere).
            (default: :obj:`"log"`)
    """
    has_translation: bool
    embeddings = EMBEDDINGS

    def __init__(self, embedding: str = 'log'):
        check_choice('embedding', embedding, self.embeddings)
        self.embedding = embedding

    # ------------------------------------------------------------------
    # Matrix structure.
    def rotation(self, g: Tensor) -> Tensor:
        r"""The rotation block :obj:`[..., n, n]` of :math:`g`."""
        n = self.space_dim
        return g[..., :n, :n]

    def translation(self, g: Tensor) -> Tensor:
        r"""The translation :obj:`[..., n]` of :math:`g` (zero for
        :math:`SO(n)`)."""
        if not self.has_translation:
            return g.new_zeros(g.shape[:-2] + (self.space_dim, ))
        return g[..., :self.space_dim, self.space_dim]

    def from_parts(self, R: Tensor, t: Optional[Tensor] = None) -> Tensor:
        r"""Builds elements from rotations :obj:`R` and translations
        :obj:`t` (ignored by :math:`SO(n)`)."""
        if not self.has_translation:
            return R
        if t is None:
            t = R.new_zeros(R.shape[:-1])
        R, t = torch.broadcast_tensors(R, t[..., None])
        top = torch.cat([R, t[..., :1]], dim=-1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., -1] = 1
        return torch.cat([top, bottom], dim=-2)

    def inv(self, g: Tensor) -> Tensor:
        Rt = self.rotation(g).transpose(-1, -2)
        if not self.has_translation:
            return Rt
        t = -(Rt @ self.translation(g)[..., None])[..., 0]
        return self.from_parts(Rt, t)

    def compose(self, g: Tensor, h: Tensor) -> Tensor:
        return g @ h

    def act(self, g: Tensor, pos: Tensor) -> Tensor:
        out = (self.rotation(g) @ pos[..., None])[..., 0]
        if self.has_translation:
            out = out + self.translation(g)
        return out

    # ------------------------------------------------------------------
    # Embedding.
    @property
    def embed_dim(self) -> int:
        if self.embedding == 'log':
            return self.lie_dim
        n = self.space_dim
        return n * n + (n if self.has_translation else 0)

    def embed(self, g: Tensor) -> Tensor:
        if self.embedding == 'log':
            return self.log(g)
        R = self.rotation(g).flatten(-2)
        if not self.has_translation:
            return R
        return torch.cat([R, self.translation(g)], dim=-1)

    # ------------------------------------------------------------------
    # Sampling and lifting.
    def random_rotation(self, num: int, generator: Optional[torch.Generator],
                        dtype: Optional[torch.dtype],
                        device: Optional[torch.device]) -> Tensor:
        r"""Haar-random rotation matrices :obj:`[num, n, n]`."""
        raise NotImplementedError

    def sample(self, num: int, generator: Optional[torch.Generator] = None,
               dtype: Optional[torch.dtype] = None,
               device: Optional[torch.device] = None) -> Tensor:
        R = self.random_rotation(num, generator, dtype, device)
        t = None
        if self.has_translation:
            t = torch.randn(num, self.space_dim, generator=generator,
                            dtype=R.dtype, device=R.device)
        return self.from_parts(R, t)

    @staticmethod
    def directions(pos: Tensor) -> Tuple[Tensor, Tensor]:
        r"""Unit vectors :math:`x / |x|` and the mask of points at the
        origin, where the direction is undefined (and returned as zero)."""
        norm = safe_norm(pos, keepdim=True)
        at_origin = norm == 0
        return pos / torch.where(at_origin, 1.0, norm), at_origin[..., 0]

    def __repr__(self) -> str:
        if self.embedding == 'log':
            return super().__repr__()
        return f"{self.__class__.__name__}(embedding='{self.embedding}')"


class RotationGroup(RigidMotionGroup):
    r"""Base class of :math:`SO(n)` acting on :math:`\mathbb{R}^n` by
    rotation. The action is not transitive: the orbits are spheres, so each
    lifted element carries the radius :math:`q(x) = |x|`."""
    has_translation = False
    q_dim = 1

    def orbit_invariant(self, pos: Tensor) -> Tensor:
        return safe_norm(pos, keepdim=True)
