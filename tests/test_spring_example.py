import json
import math
import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope='module')
def example(load_example):
    return load_example('spring_dynamics')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    # Generated once for the module (a chunk of 100 systems per split).
    return str(tmp_path_factory.mktemp('springs'))


def tiny(data_root, out, *extra):
    return [
        '--n-train', '8', '--train-systems', '8', '--n-val', '4',
        '--n-test', '6', '--batch-size', '4', '--eval-batch-size', '6',
        '--hidden', '8', '--layers', '1', '--heads', '2', '--kernel-dim',
        '4', '--threads', '1', '--root', data_root, '--out', str(out),
        '--no-progress', '--plot-systems', '2', *extra
    ]


def check_outputs(metrics, out, long_states=100):
    for key in ('test_mse_5', 'test_mse_100', 'energy_drift_100',
                'best_val_mse', 'true_energy_drift_100'):
        assert math.isfinite(metrics[key]) and metrics[key] >= 0, key
    assert metrics['parameters'] > 0
    assert len(metrics['rollout_mse_per_step']) == long_states
    for path in metrics['plots'].values():
        assert Path(path).is_file() and Path(path).stat().st_size > 0
        assert Path(path).parent == Path(out)
    with open(Path(out) / 'metrics.json') as f:
        saved = json.load(f)
    assert saved['test_mse_5'] == metrics['test_mse_5']
    assert saved['args']['n_train'] == 8


@pytest.mark.parametrize('model', ['lie', 'fc'])
def test_train_and_evaluate(example, data_root, tmp_path, model):
    metrics = example.main(tiny(data_root, tmp_path, '--model', model,
                                '--epochs', '2'))
    check_outputs(metrics, tmp_path)
    assert [h['epoch'] for h in metrics['history']] == [1, 2]
    assert metrics['steps_per_epoch'] == 2
    assert metrics['start_epoch'] == 1
    assert metrics['resumed_from_epoch'] is None
    assert metrics['model'] == ('LieTransformer-T2'
                                if model == 'lie' else 'FC')


def test_protocols(example, data_root, tmp_path):
    r"""The paper's chunks of 5 and 100 states, or this example's earlier
    ones of 5 and 100 steps; a run of one refuses to resume as the other."""
    paper = example.main(tiny(data_root, tmp_path / 'p', '--model', 'fc',
                              '--epochs', '1'))
    assert paper['args']['protocol'] == 'paper'
    shared = example.main(tiny(data_root, tmp_path / 's', '--model', 'fc',
                               '--epochs', '1', '--protocol', 'shared'))
    check_outputs(shared, tmp_path / 's', long_states=101)
    with pytest.raises(ValueError, match='protocol'):
        example.main(tiny(data_root, tmp_path / 'p', '--model', 'fc',
                          '--epochs', '2', '--protocol', 'shared',
                          '--resume'))


def test_resume_with_more_epochs(example, data_root, tmp_path, capsys):
    first = example.main(tiny(data_root, tmp_path, '--model', 'fc',
                              '--epochs', '1'))
    assert [h['epoch'] for h in first['history']] == [1]
    capsys.readouterr()
    second = example.main(tiny(data_root, tmp_path, '--model', 'fc',
                               '--epochs', '3', '--resume'))
    log = capsys.readouterr().out
    assert 'resumed from epoch 1' in log
    assert 'epoch    1/' not in log and 'epoch    2/3' in log
    assert second['start_epoch'] == 2 and second['resumed_from_epoch'] == 1
    assert [h['epoch'] for h in second['history']] == [1, 2, 3]
    assert second['history'][0] == first['history'][0]
    check_outputs(second, tmp_path)
    ckpt = torch.load(tmp_path / 'checkpoint.pt', weights_only=False)
    assert ckpt['epoch'] == 3


def test_interrupted_checkpoint_write(example, data_root, tmp_path,
                                      monkeypatch, capsys):
    args = ('--model', 'hfc', '--hidden', '16', '--epochs', '2')
    full = example.main(tiny(data_root, tmp_path / 'full', *args))

    out = tmp_path / 'interrupted'
    real_save = torch.save

    def save_then_fail(obj, f, *a, **kw):
        if isinstance(obj, dict) and obj.get('epoch') == 2:
            f.write(b'half a checkpoint')  # dies in the middle of a write
            raise KeyboardInterrupt
        return real_save(obj, f, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(torch, 'save', save_then_fail)
        with pytest.raises(KeyboardInterrupt):
            example.main(tiny(data_root, out, *args))
    # No partial or temporary file: the epoch-1 checkpoint is intact.
    assert sorted(os.listdir(out)) == ['best.pt', 'checkpoint.pt']
    ckpt = torch.load(out / 'checkpoint.pt', weights_only=False)
    assert ckpt['epoch'] == 1

    capsys.readouterr()
    resumed = example.main(tiny(data_root, out, *args, '--resume'))
    assert 'resumed from epoch 1' in capsys.readouterr().out
    assert resumed['start_epoch'] == 2
    # Model, optimiser, schedule and RNG states restored: the same run.
    for a, b in zip(resumed['history'], full['history'], strict=True):
        assert a['epoch'] == b['epoch']
        assert a['val_mse'] == pytest.approx(b['val_mse'], rel=1e-6)
        assert a['train_mse'] == pytest.approx(b['train_mse'], rel=1e-6)
    assert resumed['test_mse_5'] == pytest.approx(full['test_mse_5'],
                                                  rel=1e-6)


def test_save_atomic_leaves_no_partial_file(example, tmp_path, monkeypatch):
    path = tmp_path / 'state.pt'
    example.atomic_save({'step': 1}, str(path))

    def fail(obj, f, *a, **kw):
        f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', fail)
    with pytest.raises(OSError, match='disk full'):
        example.atomic_save({'step': 2}, str(path))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ['state.pt']
    assert torch.load(path) == {'step': 1}


@pytest.mark.parametrize('extra, match', [
    (('--n-train', '20'), 'exceeds the training split'),
    (('--group', 'T3'), 'acts on R\\^3, but the points are in R\\^2'),
    (('--group', 'XYZ'), 'Unknown group'),
    (('--hidden', '9'), 'divisible'),
    (('--epochs', '0'), "'--epochs' must be >= 1"),
    (('--lr', '-1'), "'--lr'"),
])
def test_bad_arguments(example, data_root, tmp_path, extra, match):
    with pytest.raises(ValueError, match=match):
        example.main(tiny(data_root, tmp_path, *extra))


def test_resume_with_another_recipe(example, data_root, tmp_path):
    example.main(tiny(data_root, tmp_path, '--model', 'fc', '--epochs', '1'))
    with pytest.raises(ValueError, match=r"made with batch_size=4, lr=0.001 "
                       r"\(requested batch_size=2, lr=0.002\)"):
        example.main(tiny(data_root, tmp_path, '--model', 'fc', '--epochs',
                          '2', '--batch-size', '2', '--lr', '2e-3',
                          '--resume'))
    with pytest.raises(ValueError, match=r"made with model='fc' \(requested "
                       r"model='lie'\)"):
        example.main(tiny(data_root, tmp_path, '--epochs', '2', '--resume'))


def test_resume_without_checkpoint(example, data_root, tmp_path):
    with pytest.raises(FileNotFoundError, match='no checkpoint'):
        example.main(tiny(data_root, tmp_path, '--model', 'fc', '--resume'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only torch')
def test_cuda_without_cuda_is_a_clear_error(example, data_root, tmp_path):
    with pytest.raises(ValueError, match="Device 'cuda'.*CPU build"):
        example.main(tiny(data_root, tmp_path, '--device', 'cuda'))


def test_paper_layout(example, data_root, tmp_path):
    r"""--paper-layout trains the original's layout (its parameter count at
    the default sizes is the paper's 841,641)."""
    metrics = example.main(tiny(data_root, tmp_path, '--epochs', '1',
                                '--paper-layout'))
    assert metrics['args']['paper_layout']
    args = example.parse_args(['--paper-layout'])
    model = example.build_model(args)
    assert sum(p.numel() for p in model.parameters()) == 841_641
