import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from torch_lie.training import Checkpointer, fit, warmup_cosine


def problem(seed=0):
    torch.manual_seed(seed)
    x = torch.randn(40, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(40)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True,
                        generator=gen)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def step(batch):
        xb, yb = batch
        loss = (model(xb).squeeze(-1) - yb).pow(2).mean()
        loss.backward()
        return len(xb), {'mse': loss.item() * len(xb)}

    def evaluate():
        with torch.no_grad():
            return {'val_mse': float((model(x).squeeze(-1) - y).pow(2).mean())}

    return model, loader, step, optimizer, evaluate, gen


def run(directory, epochs, resume=False, monitor='val_mse', **kwargs):
    model, loader, step, optimizer, evaluate, gen = problem()
    scheduler = warmup_cosine(optimizer, 6 * len(loader))
    result = fit(model, loader, step, optimizer, scheduler, epochs,
                 Checkpointer(str(directory), {'lr': 0.05}, resume=resume),
                 evaluate=evaluate, monitor=monitor, generator=gen,
                 progress=False, log=lambda msg: None, **kwargs)
    return model, result


def test_trains_tracks_the_best_and_loads_it(tmp_path):
    model, result = run(tmp_path, 6)
    history = result['history']
    assert [h['epoch'] for h in history] == [1, 2, 3, 4, 5, 6]
    assert history[-1]['train_mse'] < 0.1 * history[0]['train_mse']
    best = min(history, key=lambda h: h['val_mse'])
    assert (result['best_epoch'], result['best_val_mse']) == (
        best['epoch'], best['val_mse'])
    assert history[-1]['lr'] == pytest.approx(0.0, abs=1e-12)  # cosine end
    assert result['train_time_s'] == pytest.approx(
        sum(h['seconds'] for h in history))
    # The best weights are loaded back at the end.
    saved = torch.load(tmp_path / 'best.pt', weights_only=False)['model']
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key])


def test_resume_gives_the_uninterrupted_run(tmp_path):
    full, whole = run(tmp_path / 'whole', 6)
    run(tmp_path / 'split', 3)
    resumed, second = run(tmp_path / 'split', 6, resume=True)
    assert second['resumed_from_epoch'] == 3
    for a, b in zip(whole['history'], second['history'], strict=True):
        assert (a['train_mse'], a['val_mse']) == (b['train_mse'], b['val_mse'])
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_eval_every_and_schedule_per_epoch(tmp_path):
    _, result = run(tmp_path, 5, monitor=None, eval_every=2,
                    schedule_per='epoch')
    assert [('val_mse' in h) for h in result['history']] == [
        False, True, False, True, True]  # and after the last epoch
    assert 'best_epoch' not in result
    # Stepped per epoch over a schedule of 6 * len(loader) steps: barely
    # decayed after 5 epochs.
    assert result['history'][-1]['lr'] == pytest.approx(
        0.05 * 0.5 * (1 + math.cos(math.pi * 5 / 30)))
    with pytest.raises(ValueError, match="'schedule_per' must be"):
        run(tmp_path / 'x', 1, schedule_per='batch')


def test_non_finite_loss_names_the_epoch(tmp_path):
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(batch):
        loss = model(batch).sum() * math.inf
        loss.backward()
        return 1, {'loss': loss.item()}

    with pytest.raises(FloatingPointError, match='at epoch 1; try a smaller'):
        fit(model, [torch.ones(1, 1)], step, optimizer, None, 2,
            Checkpointer(str(tmp_path), {}), progress=False)


def test_empty_loader_and_no_finite_monitor_are_errors(tmp_path):
    r"""An epoch without a batch is an error, not a silent "training"; a
    run whose monitored metric is never finite says so (not a missing
    best.pt)."""
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(batch):
        loss = model(batch).pow(2).mean()
        loss.backward()
        return len(batch), {'loss': float(loss.detach()) * len(batch)}

    with pytest.raises(ValueError, match='gave no batch in epoch 1'):
        fit(model, [], step, optimizer, None, 2,
            Checkpointer(str(tmp_path / 'a'), {}), progress=False,
            log=lambda m: None)
    with pytest.raises(ValueError, match="no epoch gave a finite 'val'"):
        fit(model, [torch.ones(3, 2)], step, optimizer, None, 2,
            Checkpointer(str(tmp_path / 'b'), {}),
            evaluate=lambda: {'val': float('nan')}, monitor='val',
            progress=False, log=lambda m: None)
