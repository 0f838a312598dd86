import math
from typing import Iterator, List, Optional

import torch
from torch import Tensor
from torch.utils.data import Sampler

from torch_lie.utils import check_int


class BucketBatchSampler(Sampler[List[int]]):
    r"""Batches of indices of a data set whose items have :obj:`sizes`
    (e.g. points per graph), for the :obj:`batch_sampler` argument of a
    :class:`~torch.utils.data.DataLoader`.

    With :obj:`bucket`, the shuffled items are cut into pools of
    :obj:`pool` batches, sorted by size within each pool and batched, and
    the batches shuffled: batches of similar sizes, so little padding when
    a batch is padded to its largest item, and still a random order.
    Every iteration draws a new order from :obj:`generator`.

    Args:
        sizes (torch.Tensor): The size of each item.
        batch_size (int): Items per batch (the last may have fewer).
        shuffle (bool, optional): Draw a random order. (default:
            :obj:`True`)
        bucket (bool, optional): Batch items of similar sizes.
            (default: :obj:`True`)
        pool (int, optional): Batches per sorted pool. (default: :obj:`50`)
        generator (torch.Generator, optional): The source of the orders.
    """
    def __init__(self, sizes: Tensor, batch_size: int, shuffle: bool = True,
                 bucket: bool = True, pool: int = 50,
                 generator: Optional[torch.Generator] = None):
        self.sizes = torch.as_tensor(sizes)
        self.batch_size = check_int('batch_size', batch_size)
        self.shuffle = shuffle
        self.bucket = bucket
        self.pool = check_int('pool', pool)
        self.generator = generator

    def __len__(self) -> int:
        return math.ceil(self.sizes.numel() / self.batch_size)

    def __iter__(self) -> Iterator[List[int]]:
        num = self.sizes.numel()
        order = (torch.randperm(num, generator=self.generator)
                 if self.shuffle else torch.arange(num))
        if self.bucket:
            order = torch.cat([
                c[self.sizes[c].argsort(stable=True)]
                for c in order.split(self.pool * self.batch_size)])
        batches = order.split(self.batch_size)
        if self.shuffle and self.bucket:
            perm = torch.randperm(len(batches), generator=self.generator)
            batches = [batches[i] for i in perm.tolist()]
        return iter([b.tolist() for b in batches])
