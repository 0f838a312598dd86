r"""examples/qm9.py end to end on a small QM9 written from ASE molecules
(the real :class:`torch_geometric.datasets.QM9` class reads it): training,
checkpoints, resumption and predictions from files, run as a user would."""
import json
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


def metrics(out):
    return json.loads((out / 'metrics.json').read_text())


def test_train_and_predict(run_example, root, tmp_path):
    out = tmp_path / 'run'
    result = run_example('qm9', '--root', root, '--target', 'homo', '--group',
                         'SE3', '--num-lift-samples', '2', '--epochs', '1',
                         '--out', str(out), *TINY)
    assert '12 / 2 / 2 train / val / test' in result.stdout
    assert 'paper LieTr-SE3: 33 meV' in result.stdout
    saved = metrics(out)
    assert math.isfinite(saved['test_mae']) and saved['test_mae'] > 0
    assert (saved['paper_row'], saved['paper_mae'], saved['unit'],
            saved['best_epoch']) == ('LieTr-SE3', 33, 'meV', 1)
    assert saved['config']['augment'] is False  # SE(3): no augmentation
    assert not list(out.glob('.*.tmp'))

    # Predictions from files ASE reads.
    xyz, pdb = tmp_path / 'ethanol.xyz', tmp_path / 'benzene.pdb'
    write(xyz, molecule('CH3CH2OH'))
    write(pdb, molecule('C6H6'))
    best = str(out / 'best.pt')
    result = run_example('qm9', 'predict', '--checkpoint', best, str(xyz),
                         str(pdb), '--samples', '2')
    values = [float(line.split('= ')[1].split()[0])
              for line in result.stdout.splitlines()]
    assert len(values) == 2 and all(math.isfinite(v) for v in values)
    assert 'ethanol.xyz: homo = ' in result.stdout
    again = run_example('qm9', 'predict', '--checkpoint', best, str(xyz),
                        str(pdb), '--samples', '2')
    assert again.stdout == result.stdout  # seeded random lifts

    # Refused, naming why: another model, elements outside QM9, bad files,
    # and an existing run without --resume or --overwrite.
    cl, bad = tmp_path / 'chloromethane.xyz', tmp_path / 'bad.xyz'
    write(cl, molecule('CH3Cl'))
    bad.write_text('not a molecule\n')
    for args, message in [
            (('--group', 'T3', str(xyz)), "group='SE3' (requested "
             "group='T3')"),
            (('--hidden', '16', str(xyz)), 'hidden=8 (requested hidden=16)'),
            ((str(cl), ), 'chloromethane.xyz'),
            ((str(bad), ), 'bad.xyz')]:
        result = run_example('qm9', 'predict', '--checkpoint', best, *args,
                             check=False)
        assert result.returncode == 1 and message in result.stderr, args
    result = run_example('qm9', '--root', root, '--num-lift-samples', '2',
                         '--epochs', '1', '--out', str(out), *TINY,
                         check=False)
    assert 'pass --resume to continue it' in result.stderr


def test_resume_with_more_epochs(run_example, root, tmp_path):
    args = ['--root', root, '--target', 'U0', '--group', 'T3', '--lr',
            '3e-3', '--out', str(tmp_path), *TINY]
    run_example('qm9', *args, '--epochs', '1')
    first = metrics(tmp_path)
    assert first['config']['augment'] is True
    assert (first['paper_row'], first['paper_mae']) == ('LieTr-T3+aug', 17)
    result = run_example('qm9', *args, '--epochs', '2', '--resume',
                         '--hidden', '12', check=False)
    assert 'hidden=8 (requested hidden=12)' in result.stderr
    result = run_example('qm9', *args, '--epochs', '2', '--resume')
    assert 'resumed from epoch 1' in result.stdout
    second = metrics(tmp_path)
    assert [h['epoch'] for h in second['history']] == [1, 2]
    assert second['history'][0] == first['history'][0]


def test_lift_on_device(run_example, root, tmp_path):
    r"""Lifting whole batches in the training loop (the GPU default) trains
    and evaluates the same kind of model."""
    run_example('qm9', '--root', root, '--target', 'alpha', '--group', 'SE3',
                '--num-lift-samples', '2', '--r', '2.0', '--epochs', '1',
                '--lift-on-device', '--out', str(tmp_path), *TINY)
    saved = metrics(tmp_path)
    assert math.isfinite(saved['test_mae'])
    assert saved['paper_mae'] == 0.104 and saved['unit'] == 'a0^3'


def test_usage_errors(run_example, root, tmp_path):
    for args, message in [(('--group', 'XYZ'), 'Unknown group'),
                          (('--target', 'nope'), 'nope'),
                          (('--epochs', '0'), '--epochs must be >= 1')]:
        result = run_example('qm9', '--root', root, '--out', str(tmp_path),
                             *args, check=False)
        assert result.returncode == 2 and message in result.stderr
        assert 'usage: qm9.py' in result.stderr
    result = run_example('qm9', 'predict', '--checkpoint', 'x.pt', 'a.xyz',
                         '--samples', '0', check=False)
    assert result.returncode == 2 and '--samples must be >= 1' in result.stderr
    assert 'usage: qm9.py predict' in result.stderr
