import math
from pathlib import Path


def test_molecules_example(load_example, tmp_path):
    molecules = load_example('molecules')
    metrics = molecules.main([
        '--epochs', '1', '--hidden', '8', '--layers', '1', '--heads', '2',
        '--batch-size', '64', '--device', 'cpu', '--out', str(tmp_path)
    ])
    assert Path(metrics['plot']).is_file()
    assert Path(metrics['plot']).parent == tmp_path
    assert set(metrics['models']) == {'T(3)', 'SE(3)'}
    for row in metrics['models'].values():
        assert row['parameters'] > 0
        assert math.isfinite(row['test_mae']) and row['test_mae'] > 0
    assert math.isfinite(metrics['baseline_mae'])
    checks = metrics['invariance']
    assert all(math.isfinite(value) for value in checks.values())
    assert checks['T(3) translation error'] < 1e-9
    assert checks['SE(3) left-multiplied elements error'] < 1e-9
