from typing import Any

from torch_geometric.data import Data


class LiftedData(Data):
    r"""A :class:`~torch_geometric.data.Data` object whose nodes are lifted
    group elements, as produced by :class:`torch_lie.transforms.Lift`.

    Node-level attributes (:obj:`x`, :obj:`g`, :obj:`q`, :obj:`point_index`)
    have one row per lifted element; :obj:`pos` keeps one row per input
    point. :obj:`point_index` maps lifted elements to their points and is
    shifted by the number of *points* when batching (PyG would otherwise
    shift every attribute whose name contains :obj:`"index"` by the number
    of nodes, here lifted elements).
    """
    @property
    def num_points(self) -> int:
        r"""Number of input points the elements were lifted from."""
        if 'pos' in self:
            return self.pos.size(0)
        return int(self.point_index.max()) + 1 if self.point_index.numel() else 0

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key == 'point_index':
            return self.num_points
        return super().__inc__(key, value, *args, **kwargs)
