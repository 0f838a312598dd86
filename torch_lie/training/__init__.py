r"""What the example scripts share to train: checkpoints that resume, the
learning-rate schedule, metrics files and tables, size-bucketed batches and
data-parallel helpers."""
from torch_lie.training.checkpoint import (
    Checkpointer,
    get_rng_state,
    read_checkpoint,
    set_rng_state,
)
from torch_lie.training.distributed import DistributedContext, init_distributed
from torch_lie.training.metrics import markdown_table, save_json
from torch_lie.training.sampler import BucketBatchSampler
from torch_lie.training.schedule import warmup_cosine

__all__ = [
    'Checkpointer',
    'read_checkpoint',
    'get_rng_state',
    'set_rng_state',
    'warmup_cosine',
    'save_json',
    'markdown_table',
    'BucketBatchSampler',
    'DistributedContext',
    'init_distributed',
]
