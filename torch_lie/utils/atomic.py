import os
import tempfile
from contextlib import contextmanager
from typing import IO, Any, Iterator

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: str, mode: str = 'wb') -> Iterator[IO]:
    r"""Opens a temporary file next to :obj:`path` for writing and, when the
    :obj:`with` block ends without an error, renames it over :obj:`path`
    (with the permissions of a newly created file): readers see the previous
    file or the complete new one, never a partial write, and a failed write
    leaves no temporary file behind."""
    directory, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f'.{name}.',
                               suffix='.tmp')
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_save(obj: Any, path: str) -> None:
    r"""Saves :obj:`obj` with :func:`torch.save` to :obj:`path` through
    :func:`atomic_file`."""
    with atomic_file(path) as f:
        torch.save(obj, f)
