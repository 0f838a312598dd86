import json
import math

from benchmarks.springs_ablation import build_potential, main

TINY = ['--steps', '3', '--batch-size', '5', '--n-train', '10',
        '--train-systems', '10', '--n-val', '4', '--hidden', '8',
        '--layers', '1', '--heads', '2', '--kernel-dim', '4', '--no-compile']


def test_ablation_bench_runs_and_writes_its_curve(tmp_path):
    out = tmp_path / 'curve.json'
    curve = main(TINY + ['--root', str(tmp_path), '--out', str(out)])
    assert [p['step'] for p in curve] == [3]
    assert all(math.isfinite(p['val_mse']) and p['val_mse'] > 0
               for p in curve)
    assert json.loads(out.read_text())['curve'] == curve


def test_ablation_bench_validates_the_moving_average_too(tmp_path):
    [point] = main(TINY + ['--ema', '0.5', '--root', str(tmp_path)])
    assert math.isfinite(point['ema_val_mse'])
    assert point['ema_val_mse'] != point['val_mse']  # a different model


def test_ablation_switches_change_the_model():
    import argparse
    args = argparse.Namespace(hidden=8, layers=1, heads=2, kernel_dim=4,
                              attention='dot_product', final_norm=False,
                              location_init='he', output_layers=2)
    plain = build_potential(args).transformer
    assert plain.norm is None and len(plain.head) == 4
    args.final_norm, args.output_layers = True, 3
    changed = build_potential(args).transformer
    assert changed.norm is not None
    linears = [m for m in changed.head if hasattr(m, 'weight')]
    assert len(linears) == 3
