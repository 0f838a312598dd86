r"""The paper's QM9 run projected from a step on real molecules (a batch of
4 here)."""
import json

from benchmarks import qm9_paper_run


def test_projection(qm9_root, tmp_path):
    result = qm9_paper_run.main(['--root', str(qm9_root), '--repeats', '1',
                                 '--batch-size', '4', '--threads', '1',
                                 '--out', str(tmp_path)])
    assert result['parameters'] == 55_549_761
    assert result['step_s'] > 0 and result['eval_batch_s'] > 0
    assert result['matrix_tflop_per_step'] > 0
    steps, val = 100_000 // 4, 17_748 / 4
    assert abs(result['epoch_s'] - (steps * result['step_s'] + val *
                                    result['eval_batch_s'])) < 1e-6
    assert abs(result['run_hours'] - 500 * result['epoch_s'] / 3600) < 1e-6
    saved = json.loads((tmp_path / 'qm9_paper_run.json').read_text())
    assert saved['run_hours'] == result['run_hours']
    assert 'Projected: an epoch (25,000 steps' in (
        tmp_path / 'qm9_paper_run.md').read_text()
