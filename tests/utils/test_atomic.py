import os

import pytest
import torch

from torch_lie.utils import atomic_save


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / 'state.pt'
    atomic_save({'step': 1}, str(path))

    def fail(obj, f, *a, **kw):
        f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', fail)
    with pytest.raises(OSError, match='disk full'):
        atomic_save({'step': 2}, str(path))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ['state.pt']
    assert torch.load(path) == {'step': 1}
