import math

import pytest
import torch

from torch_lie.training import Checkpointer, warmup_cosine


def lrs(scheduler, steps):
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]['lr'])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def optimizer():
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)


def test_warmup_then_cosine_to_zero():
    got = lrs(warmup_cosine(optimizer(), 10, warmup_steps=2), 12)
    assert got[:3] == [0.5, 1.0, 1.0]
    assert got[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert got[10:] == pytest.approx([0.0, 0.0], abs=1e-15)


def test_stepped_per_epoch_it_is_cosine_annealing():
    ours = lrs(warmup_cosine(optimizer(), 20), 20)
    opt = optimizer()
    theirs = lrs(torch.optim.lr_scheduler.CosineAnnealingLR(opt, 20), 20)
    assert ours == pytest.approx(theirs, rel=1e-12)


def test_resumed_with_more_steps_the_decay_is_stretched(tmp_path):
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    first = warmup_cosine(opt, 10)
    lrs(first, 4)
    ckpt = Checkpointer(str(tmp_path), {})
    ckpt.restore(model)
    ckpt.save(model, opt, first)

    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    longer = warmup_cosine(opt, 20)
    Checkpointer(str(tmp_path), {}, resume=True).restore(model, opt, longer)
    # Steps 4 and 5 of 20, not of 10.
    assert lrs(longer, 2) == pytest.approx(
        [0.5 * (1 + math.cos(math.pi * s / 20)) for s in (4, 5)])


def test_invalid_lengths():
    with pytest.raises(ValueError, match='warmup_steps < total_steps'):
        warmup_cosine(optimizer(), 10, 10)
    with pytest.raises(ValueError, match='warmup_steps < total_steps'):
        warmup_cosine(optimizer(), 0)
