import pytest
import torch
from torch_geometric.data import Data, InMemoryDataset

from torch_lie.training import BucketBatchSampler, ChunkedLoader


def dataset(sizes):
    data = InMemoryDataset()
    data.data, data.slices = data.collate(
        [Data(pos=torch.full((n, 2), float(i)), num_nodes=n)
         for i, n in enumerate(sizes)])
    return data


def test_chunks_within_the_budget_cover_each_batch_in_order():
    sizes = torch.tensor([2, 3, 5, 1, 4, 4, 2, 6])
    sampler = BucketBatchSampler(sizes, 4, shuffle=False, bucket=False)
    loader = ChunkedLoader(dataset(sizes.tolist()), sampler, sizes**2, 30)
    assert len(loader) == 2
    batches = list(loader)
    for (index, chunks), expected in zip(batches, ([0, 1, 2, 3],
                                                   [4, 5, 6, 7])):
        assert index.tolist() == expected
        assert torch.cat([c for c, _ in chunks]).tolist() == expected
        for chunk, batch in chunks:
            # Every chunk holds budget // (largest cost in the batch) items.
            assert chunk.numel() <= max(1, 30 // int(sizes[index].max()**2))
            assert batch.num_graphs == chunk.numel()
            assert batch.pos[:, 0].unique().tolist() == chunk.tolist()
    # Costs 25 in the first batch: one item per chunk; 36 in the second.
    assert [len(chunks) for _, chunks in batches] == [4, 4]


def test_a_large_budget_keeps_batches_whole_and_checks():
    sizes = torch.tensor([2, 3, 5])
    sampler = BucketBatchSampler(sizes, 3, shuffle=False)
    (index, chunks), = ChunkedLoader(dataset(sizes.tolist()), sampler,
                                     sizes**2, 1000)
    assert len(chunks) == 1 and chunks[0][1].num_graphs == 3
    with pytest.raises(ValueError, match="'budget' must be >= 1"):
        ChunkedLoader(dataset([1]), sampler, sizes, 0)
