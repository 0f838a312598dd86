import json
import math
import os
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch, Data

import torch_lie.datasets.constellation as cst
from torch_lie.datasets.constellation import (
    constellation_distance_features,
    generate_constellations,
)
from torch_lie.groups import SE2, T
from torch_lie.testing import assert_equivariant


@pytest.fixture(scope='module')
def example(load_example):
    return load_example('constellation')


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(cst, '_PER_CHUNK', 16)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('constellation_data'))


def tiny(data_root, out, *extra):
    return [
        '--num-train', '24', '--num-test', '10', '--batch-size', '8',
        '--eval-batch-size', '6', '--hidden', '8', '--layers', '1',
        '--heads', '2', '--kernel-dim', '4', '--threads', '1', '--plot', '4',
        '--root', data_root, '--out', str(out), '--no-progress', *extra
    ]


def check_outputs(metrics, out):
    for split in ('test', 'test_T2', 'test_SE2'):
        acc = metrics[f'{split}_accuracy']
        assert math.isfinite(acc) and 0 <= acc <= 1
        assert math.isfinite(metrics[f'{split}_loss'])
        assert set(metrics[f'{split}_accuracy_per_shape']) == {
            'triangle', 'square', 'pentagon', 'L'}
    assert metrics['parameters'] > 0
    assert Path(metrics['plot']).is_file()
    assert Path(metrics['plot']).parent == Path(out)
    assert Path(metrics['plot']).stat().st_size > 0
    with open(Path(out) / 'metrics.json') as f:
        saved = json.load(f)
    assert saved['test_accuracy'] == metrics['test_accuracy']
    assert saved['args']['num_train'] == 24


@pytest.mark.parametrize('extra, name', [
    (('--group', 'T2'), 'LieTransformer-T2'),
    (('--group', 'SE2', '--num-samples', '2'),
     'LieTransformer-SE2 (2 lift samples)'),
    (('--model', 'transformer', '--features', 'ones'), 'Transformer'),
])
def test_train_and_evaluate(example, data_root, tmp_path, extra, name):
    metrics = example.main(tiny(data_root, tmp_path, '--epochs', '1',
                                *extra))
    check_outputs(metrics, tmp_path)
    assert metrics['model'] == name
    assert [h['epoch'] for h in metrics['history']] == [1]
    assert metrics['steps_per_epoch'] == 3
    assert math.isfinite(metrics['history'][0]['test_accuracy'])
    assert sorted(os.listdir(tmp_path)) == ['checkpoint.pt', 'metrics.json',
                                            'predictions.png']

    # The summary table: this run's accuracies beside the paper's.
    table = tmp_path.with_name(tmp_path.name + '-summary.md')
    runs = example.main(['--summary', str(tmp_path), '--markdown',
                         str(table)])['runs']
    assert runs[0]['test_accuracy'] == metrics['test_accuracy']
    row = table.read_text().splitlines()[2]
    assert f"{metrics['test_SE2_accuracy']:.3f}" in row
    paper = {'LieTransformer-T2': '0.75 / 0.63', 'LieTransformer-SE2':
             '0.71 / 0.69', 'Transformer': '0.58 / 0.44'}
    assert paper[name.split(' (')[0]] in row


def test_interrupted_and_resumed(example, data_root, tmp_path, monkeypatch,
                                 capsys):
    args = ('--group', 'SE2-C4', '--epochs', '2', '--attention',
            'dot_product', '--features', 'ones')
    full = example.main(tiny(data_root, tmp_path / 'full', *args))
    assert [h['epoch'] for h in full['history']] == [1, 2]

    out = tmp_path / 'interrupted'
    real_save = torch.save

    def save_then_fail(obj, f, *a, **kw):
        if isinstance(obj, dict) and obj.get('epoch') == 2:
            f.write(b'half a checkpoint')
            raise KeyboardInterrupt
        return real_save(obj, f, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(torch, 'save', save_then_fail)
        with pytest.raises(KeyboardInterrupt):
            example.main(tiny(data_root, out, *args))
    assert sorted(os.listdir(out)) == ['checkpoint.pt']
    assert torch.load(out / 'checkpoint.pt', weights_only=False)['epoch'] == 1

    # Without --resume an existing run is not overwritten.
    with pytest.raises(ValueError, match='--resume'):
        example.main(tiny(data_root, out, *args))
    # A different configuration does not resume.
    with pytest.raises(ValueError, match='hidden'):
        example.main(tiny(data_root, out, *args, '--resume', '--hidden',
                          '16'))
    capsys.readouterr()
    resumed = example.main(tiny(data_root, out, *args, '--resume'))
    assert 'resumed from epoch 1' in capsys.readouterr().out
    assert resumed['start_epoch'] == 2 and resumed['resumed_from_epoch'] == 1
    for a, b in zip(resumed['history'], full['history'], strict=True):
        assert a['train_loss'] == pytest.approx(b['train_loss'], rel=1e-5)
        assert a['test_accuracy'] == b['test_accuracy']
    assert resumed['test_SE2_accuracy'] == full['test_SE2_accuracy']


def test_max_pairs_does_not_change_training(example, data_root, tmp_path):
    args = ('--group', 'SE2-C4', '--epochs', '2', '--eval-batch-size', '10')
    whole = example.main(tiny(data_root, tmp_path / 'whole', *args))
    chunked = example.main(tiny(data_root, tmp_path / 'chunked', *args,
                                '--max-pairs', '1'))
    for a, b in zip(whole['history'], chunked['history'], strict=True):
        assert a['train_loss'] == pytest.approx(b['train_loss'], rel=1e-5)
        assert a['test_loss'] == pytest.approx(b['test_loss'], rel=1e-5)


def test_split_batch(example):
    sizes = torch.tensor([3, 10, 34, 5, 7])
    index = torch.tensor([0, 1, 3, 4])
    chunks = example.split_batch(index, sizes, 1, 250)  # 10^2 pairs each
    assert [c.tolist() for c in chunks] == [[0, 1], [3, 4]]
    chunks = example.split_batch(index, sizes, 4, 10)  # at least one each
    assert [c.tolist() for c in chunks] == [[0], [1], [3], [4]]
    assert example.split_batch(index, sizes, 1, 10**6)[0].tolist() == \
        index.tolist()


def test_resume_without_checkpoint(example, data_root, tmp_path):
    with pytest.raises(FileNotFoundError, match='no checkpoint'):
        example.main(tiny(data_root, tmp_path, '--resume'))


@pytest.mark.parametrize('extra, match', [
    (('--features', 'ones'), 'softmax'),
    (('--group', 'T3'), 'acts on R\\^3, but the points are in R\\^2'),
    (('--group', 'XYZ'), 'Unknown group'),
    (('--group', 'SE2-C4', '--num-samples', '2'), 'num_samples'),
    (('--hidden', '9'), 'divisible'),
    (('--epochs', '0'), "'--epochs' must be >= 1"),
    (('--lr', '-1'), "'--lr'"),
])
def test_bad_arguments(example, data_root, tmp_path, extra, match):
    with pytest.raises(ValueError, match=match):
        example.main(tiny(data_root, tmp_path, *extra))


def test_make_batches(example):
    sizes = torch.randint(3, 35, (103, ))
    gen = torch.Generator().manual_seed(0)
    for bucket in (False, True):
        batches = example.make_batches(sizes, 10, gen, bucket=bucket)
        assert len(batches) == 11
        assert sorted(torch.cat(batches).tolist()) == list(range(103))
    # Bucketed batches have less padding.
    def padded(batches):
        return sum(int(sizes[b].max()) * b.numel() for b in batches)

    assert padded(example.make_batches(sizes, 10, gen, bucket=True)) < \
        padded(example.make_batches(sizes, 10, gen, bucket=False))
    # Not shuffled: in order.
    plain = example.make_batches(sizes, 10, shuffle=False, bucket=False)
    assert torch.equal(torch.cat(plain), torch.arange(103))


def constellation(seed=0):
    batch = generate_constellations(1, torch.Generator().manual_seed(seed))
    return batch.pos[0][batch.mask[0]]


def as_data(pos):
    return Data(pos=pos, x=constellation_distance_features(pos))


def model_fn(model):
    def fn(pos):
        model.to(pos.dtype)
        return model(as_data(pos))[0]

    return fn


def quarter_turns():
    group = SE2(4)
    angles = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64) * math.pi
    zero = torch.zeros(3, dtype=torch.float64)
    rotations = group.exp(torch.stack([angles, zero, zero], -1))
    with_shift = group.exp(torch.tensor([[0.5 * math.pi, 0.3, -2.0]],
                                        dtype=torch.float64))
    return torch.cat([rotations, with_shift])


def test_se2_c4_model_is_invariant_to_quarter_turns(example):
    torch.manual_seed(0)
    model = example.ConstellationModel(33, 16, 2, 2, group='SE2-C4',
                                       kernel_dim=8).eval()
    pos = constellation()
    errors = assert_equivariant(model_fn(model), pos, SE2(4),
                                elements=quarter_turns(),
                                dtypes=(torch.float64, ))
    assert errors[torch.float64] < 1e-9
    # Negative controls: a T2 model and the transformer baseline are not.
    t2 = example.ConstellationModel(33, 16, 2, 2, group='T2').eval()
    with pytest.raises(AssertionError, match='Not invariant'):
        assert_equivariant(model_fn(t2), pos, SE2(4),
                           elements=quarter_turns(), dtypes=(torch.float64, ))
    assert_equivariant(model_fn(t2), pos, T(2), dtypes=(torch.float64, ))
    baseline = example.ConstellationModel(33, 16, 2, 2).eval()
    with pytest.raises(AssertionError, match='Not invariant'):
        assert_equivariant(model_fn(baseline), pos, T(2),
                           dtypes=(torch.float64, ))


@pytest.mark.parametrize('group, kernel', [('SE2-C4', 'auto'),
                                           ('SE2-C4', 'sparse'),
                                           ('SE2-C4', 'dense'),
                                           (None, None)])
def test_batching_does_not_change_predictions(example, group, kernel):
    torch.manual_seed(0)
    model = example.ConstellationModel(33, 16, 2, 2, group=group).double()
    model.eval()
    if kernel is not None:
        model.net.kernel = kernel
    data = [as_data(constellation(s).double()) for s in (1, 2)]
    assert data[0].num_nodes != data[1].num_nodes
    alone = torch.cat([model(d) for d in data])
    # Constellations of different sizes in one batch (padded, or sparse
    # edges), and of equal size.
    mixed = model(Batch.from_data_list([data[1], data[0], data[1]]))
    equal = model(Batch.from_data_list([data[1], data[1]]))
    assert mixed.shape == (3, 4, 3)
    torch.testing.assert_close(mixed, alone[[1, 0, 1]], rtol=0, atol=1e-10)
    torch.testing.assert_close(equal, alone[[1, 1]], rtol=0, atol=1e-10)
