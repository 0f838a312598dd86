r"""examples/qm9.py end to end on a small QM9 written from ASE molecules
(the real :class:`torch_geometric.datasets.QM9` class reads it): training,
checkpoints, exact resumption and predictions from files."""
import math

import pytest
import torch
from ase.build import molecule
from ase.io import write

from torch_lie.datasets.qm9 import write_qm9_raw

NAMES = ['CH4', 'NH3', 'H2O', 'HF', 'CH3CH2OH', 'C6H6', 'CH3OH', 'HCN',
         'CO2', 'HCOOH', 'CH3CN', 'H2CO', 'C2H2', 'C2H4', 'C2H6', 'CH3NO2']
TINY = ['--hidden', '8', '--layers', '1', '--heads', '2', '--kernel-dim',
        '4', '--batch-size', '4', '--no-progress', '--device', 'cpu']

@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only synchronise
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    try:
        import rdkit  # noqa: F401
        pytest.skip('rdkit is installed: PyG QM9 reads other raw files')
    except ImportError:
        pass
    root = tmp_path_factory.mktemp('QM9')
    molecules = [molecule(name) for name in NAMES]
    y = torch.randn(len(NAMES), 19,
                    generator=torch.Generator().manual_seed(0))
    y[:, 7:11] -= 1000.0  # total energies
    write_qm9_raw(molecules, y, root / 'raw' / 'qm9_v3.pt')
    return str(root)


def test_train_and_predict(load_example, root, tmp_path, capsys):
    qm9 = load_example('qm9')
    out = tmp_path / 'run'
    metrics = qm9.main(['--root', root, '--target', 'homo', '--group', 'SE3',
                        '--num-lift-samples', '2', '--epochs', '1', '--out',
                        str(out)] + TINY)
    assert math.isfinite(metrics['test_mae']) and metrics['test_mae'] > 0
    assert metrics['paper_row'] == 'LieTr-SE3' and metrics['paper_mae'] == 33
    assert metrics['unit'] == 'meV' and metrics['best_epoch'] == 1
    assert metrics['config']['augment'] is False  # SE(3): no augmentation
    assert (out / 'checkpoint.pt').is_file() and (out / 'best.pt').is_file()
    assert not list(out.glob('*.tmp'))
    text = capsys.readouterr().out
    assert '12 train / 2 val / 2 test' in text
    assert 'paper LieTr-SE3: 33 meV' in text

    # Predictions from files ASE reads.
    xyz = tmp_path / 'ethanol.xyz'
    write(xyz, molecule('CH3CH2OH'))
    pdb = tmp_path / 'benzene.pdb'
    write(pdb, molecule('C6H6'))
    results = qm9.main(['predict', '--checkpoint', str(out / 'best.pt'),
                        str(xyz), str(pdb), '--samples', '2'])
    assert [r['target'] for r in results] == ['homo', 'homo']
    assert all(math.isfinite(r['value']) for r in results)
    assert 'ethanol.xyz: homo = ' in capsys.readouterr().out

    # Checkpoints of another group or width are refused, naming why.
    best = str(out / 'best.pt')
    with pytest.raises(ValueError, match="group: checkpoint 'SE3'"):
        qm9.main(['predict', '--checkpoint', best, '--group', 'T3', str(xyz)])
    with pytest.raises(ValueError, match='hidden: checkpoint 8, requested 16'):
        qm9.main(['predict', '--checkpoint', best, '--hidden', '16',
                  str(xyz)])
    # Elements outside QM9 and unreadable files.
    cl = tmp_path / 'chloromethane.xyz'
    write(cl, molecule('CH3Cl'))
    with pytest.raises(ValueError, match='chloromethane.xyz.*Cl'):
        qm9.main(['predict', '--checkpoint', best, str(cl)])
    bad = tmp_path / 'bad.xyz'
    bad.write_text('not a molecule\n')
    with pytest.raises(ValueError, match='bad.xyz'):
        qm9.main(['predict', '--checkpoint', best, str(bad)])
    # An existing run is not overwritten without --resume.
    with pytest.raises(ValueError, match='--resume'):
        qm9.main(['--root', root, '--num-lift-samples', '2', '--epochs', '1',
                  '--out', str(out)] + TINY)


def test_resume_is_exact(load_example, root, tmp_path):
    r"""An interrupted run resumed from its checkpoint ends with the same
    weights as an uninterrupted one (T(3) with random rotations: the random
    state is part of the checkpoint)."""
    qm9 = load_example('qm9')
    args = ['--root', root, '--target', 'U0', '--group', 'T3', '--epochs',
            '2', '--lr', '3e-3'] + TINY
    full = qm9.main(args + ['--out', str(tmp_path / 'full')])
    assert full['config']['augment'] is True
    assert full['paper_row'] == 'LieTr-T3+aug' and full['paper_mae'] == 17

    evaluate, calls = qm9.evaluate, []

    def interrupted(*a, **kw):  # dies during the second epoch's validation
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(*a, **kw)

    qm9.evaluate = interrupted
    part = tmp_path / 'part'
    with pytest.raises(KeyboardInterrupt):
        qm9.main(args + ['--out', str(part)])
    qm9.evaluate = evaluate
    assert torch.load(part / 'checkpoint.pt', weights_only=True)['epoch'] == 1

    with pytest.raises(ValueError, match='hidden: checkpoint 8, requested 12'):
        qm9.main(args[:-len(TINY)] + ['--hidden', '12'] + TINY[2:] +
                 ['--out', str(part), '--resume'])
    resumed = qm9.main(args + ['--out', str(part), '--resume'])
    assert [h['val_mae'] for h in resumed['history']] == \
        [h['val_mae'] for h in full['history']]
    assert resumed['test_mae'] == full['test_mae']
    a = torch.load(tmp_path / 'full' / 'checkpoint.pt', weights_only=True)
    b = torch.load(part / 'checkpoint.pt', weights_only=True)
    assert a['epoch'] == b['epoch'] == 2
    assert a['model'].keys() == b['model'].keys()
    for key, value in a['model'].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b['model'][key]), key
        else:  # the lift, in the model's extra state
            assert value == b['model'][key], key


def test_lift_on_device(load_example, root, tmp_path):
    r"""Lifting whole batches in the training loop (the GPU default) trains
    and evaluates the same kind of model."""
    qm9 = load_example('qm9')
    metrics = qm9.main(['--root', root, '--target', 'alpha', '--group',
                        'SE3', '--num-lift-samples', '2', '--r', '2.0',
                        '--epochs', '1', '--lift-on-device', '--out',
                        str(tmp_path)] + TINY)
    assert math.isfinite(metrics['test_mae'])
    assert metrics['paper_mae'] == 0.104 and metrics['unit'] == 'a0^3'
