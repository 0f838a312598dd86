import json

import pytest

from benchmarks.dynamics_data_efficiency import main

TINY = ['--train-systems', '8', '--n-val', '2', '--n-test', '4',
        '--hidden', '8', '--layers', '1', '--heads', '2', '--kernel-dim',
        '4', '--eval-batch-size', '4', '--threads', '1']


def test_study_runs_reuses_its_runs_and_reports_the_batch(tmp_path):
    argv = ['--n-train', '4', '--models', 'fc', 'lie', '--batch-size', '2',
            '--lie-epochs', '4:1', '--baseline-epochs', '1', '--no-compile',
            '--root', str(tmp_path / 'data'), '--runs', str(tmp_path / 'runs'),
            '--results', str(tmp_path / 'results'), '--'] + TINY
    rows = main(argv)
    assert [(r['model'], r['n_train'], r['steps']) for r in rows] == [
        ('fc', 4, 2), ('lie', 4, 2)]
    assert all(0 < r['test_mse_5'] < float('inf') for r in rows)

    table = (tmp_path / 'results' / 'dynamics_data_efficiency.md').read_text()
    assert 'batch 2 (or `n_train` when smaller)' in table
    assert '| 4 | LieTr-T2 (ours) |' in table
    assert (tmp_path / 'results' / 'dynamics_data_efficiency.png').stat().st_size
    saved = json.loads(
        (tmp_path / 'results' / 'dynamics_data_efficiency.json').read_text())
    assert saved['runs'] == rows

    # A second call reuses the finished runs instead of training again.
    metrics = tmp_path / 'runs' / 'lie_n4' / 'metrics.json'
    written = metrics.stat().st_mtime_ns
    assert main(argv) == rows
    assert metrics.stat().st_mtime_ns == written


def test_study_refuses_runs_of_another_recipe(tmp_path):
    argv = ['--n-train', '4', '--models', 'fc', '--baseline-epochs', '1',
            '--root', str(tmp_path / 'data'), '--runs', str(tmp_path / 'runs'),
            '--results', str(tmp_path / 'results'), '--'] + TINY
    main(['--batch-size', '2'] + argv)
    with pytest.raises(ValueError, match=r"made with batch_size=2 \(requested "
                       r"batch_size=4\): use another --runs"):
        main(['--batch-size', '4'] + argv)
