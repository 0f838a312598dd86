import torch

from torch_lie.training import BucketBatchSampler


def test_batches_cover_every_item_once_and_are_bucketed():
    sizes = torch.randint(3, 40, (1000,), generator=torch.Generator()
                          .manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    sampler = BucketBatchSampler(sizes, 16, pool=10, generator=gen)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 63
    assert sorted(i for b in batches for i in b) == list(range(1000))
    # Bucketed: far less spread within a batch than in random batches.
    spread = sum(int(sizes[b].max() - sizes[b].min()) for b in batches)
    plain = BucketBatchSampler(sizes, 16, bucket=False, generator=gen)
    random_spread = sum(int(sizes[b].max() - sizes[b].min()) for b in plain)
    assert spread * 4 < random_spread
    # Every epoch draws a new order; the same seed gives the same orders.
    assert list(sampler) != batches
    again = BucketBatchSampler(sizes, 16, pool=10,
                               generator=torch.Generator().manual_seed(1))
    assert list(again) == batches


def test_without_shuffle_batches_are_in_order():
    sampler = BucketBatchSampler(torch.ones(5), 2, shuffle=False,
                                 bucket=False)
    assert list(sampler) == [[0, 1], [2, 3], [4]]
