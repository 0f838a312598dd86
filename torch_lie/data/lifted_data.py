from typing import Any, Optional

import torch
from torch_geometric.data import Data
from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
from torch_geometric.data.storage import GlobalStorage


class LiftedData(Data):
    r"""A :class:`~torch_geometric.data.Data` object whose nodes are lifted
    group elements, as produced by :class:`torch_lie.transforms.Lift`, and
    the input of :class:`torch_lie.nn.LieTransformer`.

    Node-level attributes (:obj:`x`, :obj:`g`, :obj:`q`, :obj:`point_index`,
    :obj:`batch`) have one row per lifted element; :obj:`pos` keeps one row
    per input point. :obj:`point_index` maps lifted elements to their points
    and is shifted by the number of *points* when batching (PyG would
    otherwise shift every attribute whose name contains :obj:`"index"` by
    the number of nodes, here lifted elements). :obj:`lift` is the
    :obj:`repr` of the lift that made it, so that a model can refuse data
    lifted differently from its own lift.

    A lifted :class:`~torch_geometric.data.Batch` (from lifting a batch, or
    from tensors with a :obj:`batch` vector) is a :class:`LiftedData` with
    the element-level :obj:`batch` vector and :attr:`num_graphs`; a
    :class:`~torch_geometric.loader.DataLoader` over lifted graphs collates
    them into the same layout.
    """
    @property
    def num_points(self) -> int:
        r"""Number of input points the elements were lifted from."""
        if 'pos' in self:
            return self.pos.size(0)
        return int(self.point_index.max()) + 1 if self.point_index.numel() else 0

    @property
    def num_graphs(self) -> int:
        r"""The number of graphs (one without a :obj:`batch` vector)."""
        num_graphs: Optional[int] = getattr(self, '_num_graphs', None)
        if num_graphs is not None:
            return num_graphs
        if self.batch is None:
            return 1
        return int(self.batch.max()) + 1 if self.batch.numel() else 0

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key == 'point_index':
            return self.num_points
        return super().__inc__(key, value, *args, **kwargs)


# Safe loading (torch.load's default weights_only=True) of lifted data and of
# datasets built with pre_transform=Lift(...).
torch.serialization.add_safe_globals(
    [LiftedData, DataEdgeAttr, DataTensorAttr, GlobalStorage])


def is_lifted(data: Data) -> bool:
    r"""Whether :obj:`data` holds lifted elements (a
    :class:`LiftedData`, or a batch of them collated as :obj:`Data`)."""
    return isinstance(data, LiftedData) or 'point_index' in data


def check_not_lifted(data: Data, what: str) -> None:
    r"""Raises a :class:`ValueError` naming :obj:`what` (a transform) if
    :obj:`data` was lifted already: moving its points would leave its
    elements, neighbourhoods and pair embeddings those of the old points."""
    if is_lifted(data):
        raise ValueError(f"{what} got data lifted already (by "
                         f"{data.get('lift', 'a Lift')}): apply it to the "
                         f"point clouds, before the lift (e.g. "
                         f"Compose([{what}, lift]))")
