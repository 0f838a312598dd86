import os
import tempfile
from typing import Any

import torch


def atomic_save(obj: Any, path: str) -> None:
    r"""Saves :obj:`obj` with :func:`torch.save` to a temporary file next to
    :obj:`path`, then renames it over :obj:`path`: readers (and a resumed
    run) see the previous file or the complete new one, never a partial
    write, and a failed write leaves no temporary file behind."""
    directory, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f'.{name}.',
                               suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
