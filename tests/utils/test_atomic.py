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


def test_atomic_files_have_the_permissions_of_new_files(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_save({'step': 1}, str(tmp_path / 'a.pt'))
    finally:
        os.umask(mask)
    assert (tmp_path / 'a.pt').stat().st_mode & 0o777 == 0o644
