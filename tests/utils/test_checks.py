import pytest
import torch

from torch_lie.utils import (
    check_choice,
    check_compiler,
    check_device,
    check_positive_int,
)


def test_check_positive_int():
    assert check_positive_int('n', 3) == 3
    for bad in (0, -1, 2.0, 2.5, True, '2', None):
        with pytest.raises(ValueError, match="'n' must be a positive integer"):
            check_positive_int('n', bad)


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
