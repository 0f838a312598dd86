import copy
from typing import Union

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from torch_lie.data.lifted_data import check_not_lifted
from torch_lie.groups import Group, group_resolver


class RandomMotion(BaseTransform):
    r"""Moves a point cloud's positions :obj:`pos` by a random element of a
    :obj:`group` acting on points (:meth:`~torch_lie.groups.Group.sample`:
    Haar-random rotation parts, standard-normal translation parts), drawn
    anew at every call (functional name: :obj:`random_motion`); e.g.
    :obj:`RandomMotion('SE3')` applies random rigid motions, the
    augmentation that shows a model's invariance (or its lack). The input
    is not modified in place. Seed :func:`torch.manual_seed` to reproduce
    the draws; to rotate vectors other than the positions as well, use
    :class:`~torch_lie.transforms.RandomRotation`.

    Args:
        group (Group or str): The group, e.g. :obj:`"SE3"` or :obj:`"T3"`.
    """
    def __init__(self, group: Union[Group, str]):
        self.group = group_resolver(group)

    def forward(self, data: Data) -> Data:
        check_not_lifted(data, repr(self))
        pos = getattr(data, 'pos', None)
        if pos is None or pos.dim() != 2 or \
                pos.size(-1) != self.group.space_dim:
            raise ValueError(f"RandomMotion: 'pos' must have shape [N, "
                             f"{self.group.space_dim}] for {self.group} (got "
                             f"{None if pos is None else list(pos.shape)})")
        g = self.group.sample(1, dtype=pos.dtype, device=pos.device)[0]
        out = copy.copy(data)
        out.pos = self.group.act(g, pos)
        return out

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.group})'
