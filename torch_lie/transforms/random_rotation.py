import copy
from typing import Sequence

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from torch_lie.data.lifted_data import check_not_lifted
from torch_lie.groups import SO2, SO3


class RandomRotation(BaseTransform):
    r"""Rotates a point cloud by a Haar-random (uniformly distributed)
    rotation of :math:`SO(2)` or :math:`SO(3)` about the origin, drawn anew
    at every call (functional name: :obj:`random_rotation`): the rotation
    augmentation of models that are not rotation-invariant by construction,
    e.g. the :math:`T(3)` LieTransformer on QM9 ("T3+aug") in the
    `"LieTransformer: Equivariant Self-Attention for Lie Groups"
    <https://arxiv.org/abs/2012.10885>`_ paper.

    Unlike :class:`torch_geometric.transforms.RandomRotate` (one axis, a
    range of angles), the rotation is uniform over the whole group, drawn by
    :meth:`torch_lie.groups.Group.sample` of :class:`~torch_lie.groups.SO3`.
    All attributes named in :obj:`keys`
    (vectors :obj:`[N, dim]`, e.g. positions and forces) are rotated by the
    same rotation; the input is never modified in place. Seed
    :func:`torch.manual_seed` to reproduce the draws.

    Args:
        dim (int, optional): Dimension of the points, :obj:`2` or :obj:`3`.
            (default: :obj:`3`)
        keys (sequence of str, optional): Attributes to rotate.
            (default: :obj:`("pos",)`)
    """
    def __init__(self, dim: int = 3, keys: Sequence[str] = ('pos', )):
        if dim not in (2, 3):
            raise ValueError(f"'dim' must be 2 or 3 (got {dim})")
        if isinstance(keys, str):
            keys = (keys, )
        if len(keys) == 0:
            raise ValueError("'keys' must name at least one attribute")
        self.dim = dim
        self.keys = tuple(keys)
        self.group = SO3() if dim == 3 else SO2()

    def forward(self, data: Data) -> Data:
        check_not_lifted(data, repr(self))
        for key in self.keys:
            value = data[key] if key in data else None
            if value is None:
                raise ValueError(f"RandomRotation: the data has no '{key}' "
                                 f"to rotate")
            if (value.dim() != 2 or value.size(-1) != self.dim
                    or not value.is_floating_point()):
                raise ValueError(f"RandomRotation: '{key}' must be a "
                                 f"floating-point tensor of shape [N, "
                                 f"{self.dim}] (got {value.dtype} "
                                 f"{list(value.shape)})")
        ref = data[self.keys[0]]
        R = self.group.sample(1, dtype=ref.dtype, device=ref.device)[0]
        out = copy.copy(data)
        for key in self.keys:
            out[key] = data[key] @ R.to(data[key].dtype).T
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(dim={self.dim}, '
                f'keys={list(self.keys)})')
