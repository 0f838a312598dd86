import json
import math


def test_molecules_example(run_example, tmp_path):
    run_example('molecules', '--epochs', '1', '--hidden', '8', '--layers',
                '1', '--heads', '2', '--batch-size', '64', '--device', 'cpu',
                '--out', str(tmp_path))
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert (tmp_path / 'predictions.png').stat().st_size > 0
    assert set(metrics['models']) == {'T(3)', 'SE(3)'}
    for row in metrics['models'].values():
        assert row['parameters'] > 0
        assert math.isfinite(row['test_mae']) and row['test_mae'] > 0
    assert math.isfinite(metrics['baseline_mae'])
    checks = metrics['invariance']
    assert all(math.isfinite(value) for value in checks.values())
    assert checks['T(3) translation error'] < 1e-9
    assert checks['SE(3) left-multiplied elements error'] < 1e-9
    # The results are not replaced unasked; bad counts are usage errors.
    before = (tmp_path / 'metrics.json').read_text()
    result = run_example('molecules', '--epochs', '1', '--out',
                         str(tmp_path), check=False)
    assert result.returncode == 2 and '--overwrite' in result.stderr
    assert (tmp_path / 'metrics.json').read_text() == before
    for args, message in [(('--epochs', '0'), '--epochs must be >= 1'),
                          (('--epochs', '-1'), '--epochs must be >= 1'),
                          (('--lr', '0'), '--lr must be > 0')]:
        result = run_example('molecules', *args, '--out',
                             str(tmp_path / 'new'), check=False)
        assert result.returncode == 2 and message in result.stderr, args
    assert not (tmp_path / 'new').exists()
