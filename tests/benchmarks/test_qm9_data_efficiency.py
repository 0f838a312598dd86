r"""The QM9 study driver on the first 16 molecules of QM9: runs every model
and seed through examples/qm9.py, reports medians and quartiles, reuses its
finished runs."""
import json

from benchmarks import qm9_data_efficiency as study


def test_study_runs_reports_and_reuses(qm9_root, tmp_path, capsys):
    args = ['--root', str(qm9_root), '--runs', str(tmp_path / 'runs'),
            '--results', str(tmp_path / 'results'), '--n-train', '4', '8',
            '--seeds', '0', '1', '--epochs', '1', '--n-val', '2',
            '--eval-every', '1', '--models', 'lie-t3', 'schnet']
    study.main(args)
    result = json.loads((tmp_path / 'results' /
                         'qm9_data_efficiency_homo.json').read_text())
    rows = result['rows']
    assert [(r['model'], r['n_train']) for r in rows] == [
        ('lie-t3', 4), ('schnet', 4), ('lie-t3', 8), ('schnet', 8)]
    for row in rows:
        values = row['test_mae']['values']
        assert len(values) == 2 and row['seeds'] == [0, 1]
        assert row['test_mae']['median'] == sum(values) / 2
        assert row['num_test'] == 2 and row['unit'] == 'meV'
        assert row['config']['n_train'] == row['n_train']
        assert row['config']['n_val'] == 2
    assert result['published']['SchNet'] == 41
    md = (tmp_path / 'results' / 'qm9_data_efficiency_homo.md').read_text()
    assert '| SchNet (PyG\'s) | 8 |' in md and 'on the 2 test molecules' in md
    assert (tmp_path / 'results' / 'qm9_data_efficiency_homo.png').exists()
    # Finished runs are reused; --report-only trains nothing.
    capsys.readouterr()
    study.main(args)
    assert capsys.readouterr().out.count('done before') == 8
    study.main(args + ['--report-only'])
    assert 'done before' not in capsys.readouterr().out
