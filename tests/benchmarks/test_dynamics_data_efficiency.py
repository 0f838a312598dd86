import json

import pytest

from benchmarks.dynamics_data_efficiency import augmentations, main

TINY = ['--train-systems', '8', '--n-val', '2', '--n-test', '4',
        '--hidden', '8', '--layers', '1', '--heads', '2', '--kernel-dim',
        '4', '--max-pairs', '144', '--threads', '1']


def test_study_runs_seeds_reports_quartiles_and_reuses_its_runs(tmp_path):
    argv = ['--n-train', '4', '--models', 'fc', 'lie', '--batch-size', '2',
            '--epochs', '1', '--seeds', '0', '1', '2', '--lie-seeds', '4:2',
            '--n-test-long', '2', '--root', str(tmp_path / 'data'),
            '--runs', str(tmp_path / 'runs'),
            '--results', str(tmp_path / 'results'), '--'] + TINY
    rows = main(argv)
    assert [(r['model'], r['n_train'], r['seeds'], r['steps'])
            for r in rows] == [('fc', 4, [0, 1, 2], 2), ('lie', 4, [0, 1], 2)]
    for row in rows:
        mse = row['test_mse_5']
        assert len(mse['values']) == len(row['seeds'])
        assert min(mse['values']) <= mse['q1'] <= mse['median'] <= mse['q3']
        assert mse['q3'] <= max(mse['values']) < float('inf')
    # Three seeds of FC: the median is the middle value.
    assert rows[0]['test_mse_5']['median'] == sorted(
        rows[0]['test_mse_5']['values'])[1]
    lie = json.loads((tmp_path / 'runs' / 'lie_n4_s1' / 'metrics.json')
                     .read_text())['args']
    assert (lie['paper_layout'], lie['attention'], lie['cosine_every'],
            lie['protocol'], lie['seed']) == (True, 'dot_product', 'epoch',
                                              'paper', 1)

    table = (tmp_path / 'results' / 'dynamics_data_efficiency.md').read_text()
    assert 'stepped per epoch' in table
    assert '| 4 | LieTr-T2 (ours) | ' in table
    assert '| 1 (2) | 2, 0.001 |' in table  # the rows' batch and lr
    assert (tmp_path / 'results' / 'dynamics_data_efficiency.png').stat().st_size
    saved = json.loads(
        (tmp_path / 'results' / 'dynamics_data_efficiency.json').read_text())
    assert saved['rows'] == rows

    # A second call reuses the finished runs instead of training again.
    metrics = tmp_path / 'runs' / 'lie_n4_s1' / 'metrics.json'
    written = metrics.stat().st_mtime_ns
    assert main(argv) == rows
    assert metrics.stat().st_mtime_ns == written


def test_study_refuses_runs_of_another_recipe(tmp_path):
    argv = ['--n-train', '4', '--models', 'fc', '--epochs', '1', '--seeds',
            '0', '--n-test-long', '2', '--root', str(tmp_path / 'data'),
            '--runs', str(tmp_path / 'runs'),
            '--results', str(tmp_path / 'results'), '--'] + TINY
    rows = main(['--batch-size', '2'] + argv)
    # The evaluation's pair budget is not part of the recipe: reused.
    other = [str(2 * 144) if a == '144' else a for a in argv]
    assert main(['--batch-size', '2'] + other) == rows
    with pytest.raises(ValueError, match=r"made with batch_size=2 \(requested "
                       r"'4'\): use another --runs"):
        main(['--batch-size', '4'] + argv)


def test_report_only_keeps_only_a_command_that_trained(tmp_path):
    argv = ['--n-train', '4', '--models', 'fc', '--batch-size', '2',
            '--epochs', '1', '--seeds', '0', '--n-test-long', '2',
            '--root', str(tmp_path / 'data'), '--runs', str(tmp_path / 'runs'),
            '--results', str(tmp_path / 'results'), '--'] + TINY
    saved = tmp_path / 'results' / 'dynamics_data_efficiency.json'

    def command():
        return json.loads(saved.read_text())['command']

    main(argv)
    ran = command()
    main(['--report-only'] + argv)
    assert command() == ran and '--report-only' not in ran
    # A report made by --report-only alone is replaced by the next one.
    saved.unlink()
    main(['--report-only'] + argv)
    main(['--report-only', '--lie-seeds', '4:1'] + argv)
    assert '--report-only --lie-seeds 4:1' in command()


def test_the_report_names_the_training_augmentation():
    rows = [{'args': {'augment': ['rotate', 'reverse']}}, {'args': {}},
            {'args': {'augment': []}}]
    assert augmentations(rows) == ['rotate reverse']
    assert augmentations(rows[1:]) == []
