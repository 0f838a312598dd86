import numpy as np
import pytest
import torch

from torch_lie.utils import (
    check_choice,
    check_compiler,
    check_device,
    check_float,
    check_int,
)


def test_check_int():
    assert check_int('n', 3) == 3
    assert type(check_int('n', np.int64(3))) is int  # numpy integers too
    assert check_int('seed', -5, None) == -5
    assert check_int('k', 4, 1, 4) == 4
    for bad in (2.0, 2.5, True, '2', None):
        with pytest.raises(ValueError, match="'n' must be an int"):
            check_int('n', bad)
    for value, low, high, bound in ((0, 1, None, '>= 1'),
                                    (-1, 0, None, '>= 0'),
                                    (5, 1, 4, r'in \[1, 4\]'),
                                    (5, None, 4, '<= 4')):
        with pytest.raises(ValueError,
                           match=f"'n' must be {bound} \\(got {value}\\)"):
            check_int('n', value, low, high)


def test_check_float():
    assert check_float('p', 0.5, 0.0, 1.0) == 0.5
    assert type(check_float('p', 1, 0.0)) is float  # ints and numpy too
    assert check_float('p', np.float32(0.25), 0, 1) == 0.25
    assert check_float('p', 0.0, 0.0, 1.0, high_open=True) == 0.0
    for bad in (True, '0.5', None, float('nan'), float('inf')):
        with pytest.raises(ValueError, match="'p' must be a finite number"):
            check_float('p', bad)
    for value, kwargs, interval in (
            (1.0, dict(low=0.0, high=1.0, high_open=True), r'\[0.0, 1.0\)'),
            (0.0, dict(low=0.0, low_open=True), r'\(0.0, inf\)'),
            (-1.0, dict(low=0.0), r'\[0.0, inf\)'),
            (2.0, dict(high=1.0), r'\(-inf, 1.0\]')):
        with pytest.raises(ValueError, match=f"'p' must be in {interval} "):
            check_float('p', value, **kwargs)


def test_check_choice():
    assert check_choice('pool', 'sum', ('mean', 'sum')) == 'sum'
    with pytest.raises(ValueError, match=r"'pool' must be one of \('mean', "
                                         r"'sum'\) \(got 'median'\)"):
        check_choice('pool', 'median', ('mean', 'sum'))


def test_check_device():
    assert check_device('cpu') == torch.device('cpu')
    with pytest.raises(ValueError, match='Unknown device'):
        check_device('tpu')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='pytorch.org'):
            check_device('cuda')


def test_check_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path))  # no compiler there
    with pytest.raises(ValueError, match='needs a C.. compiler'):
        check_compiler()
    (tmp_path / 'g++').write_text('#!/bin/sh\n')
    (tmp_path / 'g++').chmod(0o755)
    check_compiler()
