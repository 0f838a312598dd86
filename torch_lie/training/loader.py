from typing import Iterable, Iterator, List, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Batch, Dataset
from torch_geometric.loader import DataLoader

from torch_lie.utils import check_int


class ChunkedLoader:
    r"""The batches of :obj:`batch_sampler` from :obj:`dataset`, each cut
    into consecutive PyG mini-batches of bounded cost, to accumulate the
    gradients of a batch too large for one forward and backward pass.

    A chunk whose most costly item costs :math:`c` (e.g. the lifted pairs
    of full attention, :math:`(\text{points} \cdot \text{lift size})^2`)
    holds at most :math:`\max(1, \lfloor \text{budget} / c \rfloor)`
    items. Iterating yields :obj:`(index, chunks)`: the batch's indices and
    a list of :obj:`(chunk_index, Batch)`.

    .. code-block:: python

        for index, chunks in ChunkedLoader(dataset, sampler, cost, 1 << 14):
            optimizer.zero_grad()
            for chunk_index, batch in chunks:
                (loss_sum(model(batch)) / index.numel()).backward()
            optimizer.step()

    Args:
        dataset (torch_geometric.data.Dataset): The items.
        batch_sampler (iterable): Lists of indices, e.g. a
            :class:`~torch_lie.training.BucketBatchSampler`.
        cost (torch.Tensor): The cost of each item.
        budget (int): The largest cost of a chunk (a single item may exceed
            it).
    """
    def __init__(self, dataset: Dataset, batch_sampler: Iterable[Sequence[int]],
                 cost: Tensor, budget: int):
        self.dataset = dataset
        self.batch_sampler = batch_sampler
        self.cost = torch.as_tensor(cost)
        self.budget = check_int('budget', budget)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[Tuple[Tensor, List[Tuple[Tensor, Batch]]]]:
        for index in self.batch_sampler:
            index = torch.as_tensor(index)
            size = max(1, self.budget // int(self.cost[index].max()))
            chunks = index.split(size)
            loader = DataLoader(self.dataset,
                                batch_sampler=[c.tolist() for c in chunks])
            yield index, list(zip(chunks, loader))
