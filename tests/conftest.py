import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ase.build import molecule

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'


def _run_example(name: str, *args: str, check: bool = True
                 ) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run([sys.executable, str(EXAMPLES / f'{name}.py'),
                             *args], capture_output=True, text=True, env=env)
    if check and result.returncode:
        raise AssertionError(f'examples/{name}.py exited with '
                             f'{result.returncode}:\n{result.stdout}\n'
                             f'{result.stderr}')
    return result


@pytest.fixture(scope='session')
def run_example():
    r"""Runs :obj:`examples/{name}.py` with arguments as a user would (a
    fresh process), returning the completed process; a failure raises
    unless :obj:`check=False`."""
    return _run_example


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def _molecule_pos(name: str, dtype=torch.float64) -> torch.Tensor:
    r"""Atom positions of a real molecule from ASE, centred off the origin
    so that no atom sits exactly at it."""
    return torch.tensor(molecule(name).positions, dtype=dtype) + 0.1


def _molecule_features(name: str, dtype=torch.float64) -> torch.Tensor:
    r"""One-hot features of H, C, N, O and other elements."""
    z = torch.tensor(molecule(name).numbers)
    index = torch.bucketize(z, torch.tensor([1, 6, 7, 8]), right=False)
    return torch.nn.functional.one_hot(index.clamp(max=4), 5).to(dtype)


@pytest.fixture
def ethanol():
    return _molecule_pos('CH3CH2OH'), _molecule_features('CH3CH2OH')


@pytest.fixture
def benzene_2d():
    r"""Benzene is planar: its (x, y) coordinates are a real 2D shape."""
    return _molecule_pos('C6H6')[:, :2], _molecule_features('C6H6')


@pytest.fixture
def real_molecule():
    r"""Returns :obj:`(pos, x)` of an ASE molecule by name."""
    def load(name: str, dtype=torch.float64):
        return _molecule_pos(name, dtype), _molecule_features(name, dtype)
    return load


@pytest.fixture(scope='session')
def qm9_table():
    r"""All of qm9pack's molecules (a :class:`pandas.DataFrame`); the QM9
    tests need the :obj:`qm9` extra."""
    pytest.importorskip('rdkit')
    pytest.importorskip('pandas')
    from torch_lie.datasets import read_qm9pack

    try:
        return read_qm9pack()
    except ImportError as error:
        pytest.skip(str(error))


@pytest.fixture(scope='session')
def qm9_root(qm9_table, tmp_path_factory) -> Path:
    r"""A QM9 root holding the first 16 molecules of QM9 (CH4 to
    cyclopropane), written by :func:`~torch_lie.datasets.prepare_qm9` and
    processed by PyG."""
    from torch_lie.datasets import prepare_qm9

    root = tmp_path_factory.mktemp('QM9')
    prepare_qm9(root, table=qm9_table.iloc[:16], progress=False)
    return root
