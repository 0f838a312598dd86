r"""examples/qm9.py end to end on the first 16 molecules of QM9, written
offline from qm9pack (the real :class:`torch_geometric.datasets.QM9` class
reads them): training, checkpoints, resumption and predictions from files,
run as a user would."""
import json
import math

import pytest
from ase.build import molecule
from ase.io import write

TINY = ['--hidden', '8', '--layers', '1', '--heads', '2', '--kernel-dim',
        '4', '--batch-size', '4', '--no-progress', '--device', 'cpu']


@pytest.fixture
def root(qm9_root):
    return str(qm9_root)


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


def test_pyg_models_one_step(run_example, root, tmp_path):
    r"""PyG's SchNet and DimeNet++ on the same pipeline; one step in all
    (the whole training set in one batch) trains."""
    for model, extra in (('schnet', ('--n-train', '5', '--n-val', '1')),
                         ('dimenet++', ())):
        out = tmp_path / model
        result = run_example('qm9', '--root', root, '--model', model,
                             '--hidden', '8', '--layers', '1', '--epochs',
                             '1', '--batch-size', '100', '--no-progress',
                             '--device', 'cpu', '--out', str(out), *extra)
        saved = metrics(out)
        assert saved['config']['model'] == model
        assert saved['config']['group'] is None and saved['paper_mae'] is None
        assert math.isfinite(saved['test_mae'])
        assert 'paper' not in result.stdout.split('test MAE')[1]
    assert metrics(tmp_path / 'schnet')['config']['r'] == 10.0
    # The first molecules of the training and validation splits; the test
    # split is whole.
    assert '5 / 1 / 2 train / val / test' in run_example(
        'qm9', '--root', root, '--model', 'schnet', '--hidden', '8',
        '--layers', '1', '--epochs', '2', '--eval-every', '2', '--n-train',
        '5', '--n-val', '1', '--no-progress', '--out',
        str(tmp_path / 'again')).stdout
    history = metrics(tmp_path / 'again')['history']
    assert ['val_mae' in h for h in history] == [False, True]
    assert metrics(tmp_path / 'dimenet++')['config']['r'] == 5.0


def test_model_flags_refused(run_example, root, tmp_path):
    for args, message in [
            (('--model', 'schnet', '--group', 'SE3'),
             '--group is an option of --model lie (not schnet)'),
            (('--model', 'dimenet++', '--heads', '2'), '--heads is an option'),
            (('--lr', '0'), '--lr must be > 0'),
            (('--warmup', '1'), '--warmup in [0, 1)'),
            (('--n-train', '0'), '--n-train must be >= 1'),
            (('--eval-every', '0'), '--eval-every must be >= 1'),
            (('--out', root + '/raw/gdb9.sdf'), 'is a file: give a folder')]:
        result = run_example('qm9', '--root', root, '--out', str(tmp_path),
                             *args, check=False)
        assert result.returncode == 2 and message in result.stderr, args


def test_no_qm9_names_the_offline_route(run_example, tmp_path, monkeypatch):
    r"""No raw files and a qm9pack without its tables: the error names the
    fix, before anything is written."""
    fake = tmp_path / 'site' / 'qm9pack'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text('')
    monkeypatch.setenv('PYTHONPATH', str(tmp_path / 'site'))
    result = run_example('qm9', '--root', str(tmp_path / 'QM9'), '--out',
                         str(tmp_path / 'run'), *TINY, check=False)
    assert result.returncode == 1
    assert "qm9_part1.csv' is missing" in result.stderr
    assert "pip install 'torch-lie[qm9]'" in result.stderr
    assert not (tmp_path / 'QM9' / 'raw' / 'gdb9.sdf').exists()


def test_paper_layout(run_example, root, tmp_path):
    r"""The paper's model and recipe in one flag (resized here), and its
    predictions."""
    out = tmp_path / 'paper'
    run_example('qm9', '--root', root, '--paper-layout', '--hidden', '16',
                '--layers', '1', '--heads', '2', '--epochs', '1',
                '--batch-size', '8', '--no-progress', '--out', str(out))
    saved = metrics(out)
    assert saved['config']['paper_layout'] is True
    assert saved['config']['betas'] == [0.5, 0.9]
    assert saved['paper_row'] == 'LieTr-SE3' and saved['paper_mae'] == 33
    xyz = tmp_path / 'ethanol.xyz'
    write(xyz, molecule('CH3CH2OH'))
    result = run_example('qm9', 'predict', '--checkpoint',
                         str(out / 'best.pt'), str(xyz))
    assert 'ethanol.xyz: homo = ' in result.stdout
    # A periodic structure is refused, not predicted as a molecule.
    crystal = molecule('CH3CH2OH')
    crystal.cell, crystal.pbc = [8.0, 8.0, 8.0], True
    write(tmp_path / 'crystal.extxyz', crystal)
    result = run_example('qm9', 'predict', '--checkpoint',
                         str(out / 'best.pt'), str(tmp_path / 'crystal.extxyz'),
                         check=False)
    assert result.returncode == 1 and 'is periodic' in result.stderr
    for args, message in [(('--kernel-dim', '4'), '--kernel-dim is set by '
                            '--paper-layout'),
                          (('--model', 'schnet'), '--paper-layout is an '
                           'option of --model lie')]:
        result = run_example('qm9', '--root', root, '--paper-layout', *args,
                             '--out', str(tmp_path / 'x'), check=False)
        assert result.returncode == 2 and message in result.stderr, args


def test_save_and_test_pretrained(run_example, root, tmp_path):
    r"""A trained model saved for from_pretrained: its test MAE reproduced by
    one command, its predictions from a file, never written over unasked."""
    path = tmp_path / 'model.pt'
    run_example('qm9', '--root', root, '--group', 'T3', '--epochs', '1',
                '--out', str(tmp_path / 'run'), '--save-pretrained', str(path),
                *TINY)
    recorded = metrics(tmp_path / 'run')['test_mae']
    result = run_example('qm9', '--root', root, '--pretrained', str(path),
                         '--no-progress')
    assert f'test MAE homo {recorded:.4g} meV on 2 molecules' in result.stdout
    xyz = tmp_path / 'ethanol.xyz'
    write(xyz, molecule('CH3CH2OH'))
    assert 'ethanol.xyz: homo = ' in run_example(
        'qm9', 'predict', '--pretrained', str(path), str(xyz)).stdout
    before = path.read_bytes()
    for args, message in [
            (('--save-pretrained', str(path)), 'exists: pass --overwrite'),
            (('--model', 'schnet', '--save-pretrained', str(tmp_path / 'b')),
             '--save-pretrained saves a LieTransformer')]:
        result = run_example('qm9', '--root', root, '--out',
                             str(tmp_path / 'other'), *args, check=False)
        assert result.returncode == 2 and message in result.stderr, args
    assert path.read_bytes() == before
    result = run_example('qm9', 'predict', '--pretrained', str(path),
                         '--checkpoint', 'x.pt', str(xyz), check=False)
    assert result.returncode == 2 and 'not allowed with' in result.stderr
