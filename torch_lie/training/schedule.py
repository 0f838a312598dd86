import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int,
                  warmup_steps: int = 0) -> LambdaLR:
    r"""A linear warm-up over :obj:`warmup_steps` steps, then a cosine decay
    of the learning rate to zero at :obj:`total_steps` (and zero after).

    Stepped once per epoch with :obj:`total_steps` epochs and no warm-up, it
    is :class:`~torch.optim.lr_scheduler.CosineAnnealingLR`. The lengths are
    not part of the scheduler's state: a run resumed with more steps loads
    the step it reached and stretches the decay over the new length.
    """
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need 0 <= warmup_steps < total_steps (got "
                         f"{warmup_steps} and {total_steps})")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / (total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return LambdaLR(optimizer, factor)
