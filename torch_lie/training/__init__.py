r"""What the example scripts share to train: the training loop, checkpoints
that resume, the learning-rate schedule, metrics files and tables,
size-bucketed and chunked batches and data-parallel helpers."""
from torch_lie.training.checkpoint import (
    Checkpointer,
    get_rng_state,
    read_checkpoint,
    set_rng_state,
)
from torch_lie.training.cli import check_counts, check_out, exit_on_error
from torch_lie.training.distributed import DistributedContext, init_distributed
from torch_lie.training.loader import ChunkedLoader
from torch_lie.training.loop import fit
from torch_lie.training.metrics import load_runs, markdown_table, save_json
from torch_lie.training.sampler import BucketBatchSampler
from torch_lie.training.schedule import warmup_cosine

__all__ = [
    'fit',
    'Checkpointer',
    'read_checkpoint',
    'get_rng_state',
    'set_rng_state',
    'warmup_cosine',
    'save_json',
    'markdown_table',
    'load_runs',
    'check_counts',
    'check_out',
    'exit_on_error',
    'BucketBatchSampler',
    'ChunkedLoader',
    'DistributedContext',
    'init_distributed',
]
