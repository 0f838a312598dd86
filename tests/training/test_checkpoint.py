import os
import random

import pytest
import torch

from torch_lie.training import Checkpointer, read_checkpoint, warmup_cosine


def setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = warmup_cosine(optimizer, total_steps=10, warmup_steps=2)
    return model, optimizer, scheduler


def step(model, optimizer, scheduler, generator):
    x = torch.randn(4, 3, generator=generator)
    loss = model(x).pow(2).mean() + torch.rand(()) + random.random()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item()


def test_resume_continues_exactly(tmp_path):
    config = {'lr': 1e-2, 'width': 3}
    # Uninterrupted: 6 steps.
    model, opt, sched = setup()
    gen = torch.Generator().manual_seed(1)
    random.seed(0)
    full = [step(model, opt, sched, gen) for _ in range(6)]

    # Interrupted after 3 steps, resumed in fresh objects.
    model, opt, sched = setup()
    gen = torch.Generator().manual_seed(1)
    random.seed(0)
    ckpt = Checkpointer(str(tmp_path / 'run'), config)
    assert ckpt.restore(model, opt, sched, gen) == {}
    first = [step(model, opt, sched, gen) for _ in range(3)]
    ckpt.save(model, opt, sched, gen, epoch=3, history=first)
    ckpt.save_best(model)

    model, opt, sched = setup(seed=5)
    gen = torch.Generator().manual_seed(99)
    torch.manual_seed(123)
    random.seed(123)
    state = Checkpointer(str(tmp_path / 'run'), config, resume=True).restore(
        model, opt, sched, gen)
    assert state == {'epoch': 3, 'history': first}
    rest = [step(model, opt, sched, gen) for _ in range(3)]
    assert first + rest == full

    best = torch.nn.Linear(3, 2)
    Checkpointer(str(tmp_path / 'run'), config).load_best(best)
    assert not torch.equal(best.weight, model.weight)  # saved after step 3


def test_never_replaces_a_run_unasked(tmp_path):
    model, opt, sched = setup()
    ckpt = Checkpointer(str(tmp_path), {'a': 1})
    ckpt.restore(model, opt, sched)
    ckpt.save(model, opt, sched, epoch=1)
    ckpt.save_best(model)
    with pytest.raises(ValueError, match=r"holds a run \('checkpoint.pt'\): "
                       r"pass --resume to continue it, --overwrite to start "
                       r"over"):
        Checkpointer(str(tmp_path), {'a': 1}).restore(model, opt, sched)
    assert os.path.exists(ckpt.path) and os.path.exists(ckpt.best_path)
    # Overwriting is explicit, and removes the old run's files.
    Checkpointer(str(tmp_path), {'a': 1}, overwrite=True).restore(model)
    assert not os.path.exists(ckpt.path)
    assert not os.path.exists(ckpt.best_path)


def test_resume_refuses_another_configuration(tmp_path):
    model, opt, sched = setup()
    ckpt = Checkpointer(str(tmp_path), {'lr': 1e-3, 'width': 8, 'seed': 0})
    ckpt.restore(model)
    ckpt.save(model, opt, sched, epoch=1)
    other = Checkpointer(str(tmp_path), {'lr': 1e-2, 'width': 8, 'seed': 1},
                         resume=True, flags={'resume': "'resume=True'"})
    with pytest.raises(ValueError, match=r"'resume=True': the run in .* was "
                       r"made with lr=0.001, seed=0 \(requested lr=0.01, "
                       r"seed=1\)"):
        other.restore(model, opt, sched)


def test_resume_without_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='--resume: no checkpoint at'):
        Checkpointer(str(tmp_path), {}, resume=True).restore(setup()[0])
    with pytest.raises(ValueError, match='exclude each other'):
        Checkpointer(str(tmp_path), {}, resume=True, overwrite=True)


@pytest.mark.parametrize('content', [b'', b'garbage', b'PK\x03\x04trunc'])
def test_unreadable_checkpoint_names_the_file_and_the_fix(tmp_path, content):
    path = tmp_path / 'checkpoint.pt'
    path.write_bytes(content)
    ckpt = Checkpointer(str(tmp_path), {}, resume=True)
    with pytest.raises(ValueError, match=r"checkpoint.pt' is not a readable "
                       r"checkpoint .*remove it, or pass --overwrite"):
        ckpt.restore(setup()[0])


def test_truncated_checkpoint(tmp_path):
    model, opt, sched = setup()
    ckpt = Checkpointer(str(tmp_path), {})
    ckpt.restore(model)
    ckpt.save(model, opt, sched, epoch=1)
    data = open(ckpt.path, 'rb').read()
    open(ckpt.path, 'wb').write(data[:len(data) // 2])
    with pytest.raises(ValueError, match='is not a readable checkpoint'):
        read_checkpoint(ckpt.path)


def test_not_a_training_checkpoint(tmp_path):
    torch.save({'weight': torch.zeros(2)}, tmp_path / 'checkpoint.pt')
    with pytest.raises(ValueError, match='not a checkpoint of a training run'):
        Checkpointer(str(tmp_path), {}, resume=True).restore(setup()[0])
    torch.save([1, 2], tmp_path / 'checkpoint.pt')
    with pytest.raises(ValueError, match='holds a list, not a checkpoint'):
        Checkpointer(str(tmp_path), {}, resume=True).restore(setup()[0])


class SecondProcess:
    r"""Rank 1 of 2, its collectives answered as if rank 0 held the same."""
    rank, world_size, is_main = 1, 2, False

    def barrier(self):
        pass

    def all_gather_object(self, obj):
        return [obj, obj]


def test_only_the_main_process_writes(tmp_path):
    model, opt, sched = setup()
    ckpt = Checkpointer(str(tmp_path / 'run'), {}, ctx=SecondProcess())
    ckpt.restore(model)
    ckpt.save(model, opt, sched, epoch=1)
    ckpt.save_best(model)
    assert not os.path.exists(tmp_path / 'run')


def test_random_states_of_every_process(tmp_path):
    model, opt, sched = setup()
    ckpt = Checkpointer(str(tmp_path), {})
    ckpt.restore(model)
    ckpt.save(model, opt, sched)  # one process
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    # A second process resuming a run of one keeps its own random state.
    resumed = Checkpointer(str(tmp_path), {}, resume=True,
                           ctx=SecondProcess())
    resumed.restore(model, opt, sched)
    assert resumed.saved_world_size == 1
    assert torch.equal(torch.rand(3), expected)
    assert len(torch.load(ckpt.path, weights_only=False)['rng']) == 1


def test_best_weights_carry_the_configuration(tmp_path):
    model = setup()[0]
    ckpt = Checkpointer(str(tmp_path), {'width': 3})
    ckpt.restore(model)
    ckpt.save_best(model, target_mean=1.5)
    other = torch.nn.Linear(3, 2)
    assert ckpt.load_best(other) == {'config': {'width': 3},
                                     'target_mean': 1.5}
    assert torch.equal(other.weight, model.weight)
