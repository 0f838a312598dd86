r"""examples/qm9.py trained data-parallel by two CPU processes under
:obj:`torch.distributed.run` (torchrun, backend gloo, loopback only) on the
first 16 molecules of QM9 (written offline from qm9pack): they train as a
single process with the same global batch does, and resume a single
process's run."""
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

pytestmark = pytest.mark.skipif(not dist.is_available(),
                                reason='torch.distributed is not available')

REPO = Path(__file__).resolve().parents[1]
# T(3) lifts are deterministic and augmentation is off: no random draws
# during training, so both runs compute the same thing. 'dot_product'
# attention: under softmax, the key bias and the kernel's output bias shift
# all logits alike, get zero gradients, and Adam turns the rounding noise of
# those into updates of different size in the two runs.
ARGS = ['--target', 'U0', '--group', 'T3', '--no-augment', '--hidden', '8',
        '--layers', '1', '--heads', '2', '--kernel-dim', '4', '--attention',
        'dot_product', '--epochs', '1', '--batch-size', '4', '--lr', '3e-3',
        '--no-progress', '--device', 'cpu']


def assert_same_weights(a: dict, b: dict, exact: bool = True) -> None:
    r"""Two state dicts hold the same weights (:obj:`exact`, or up to
    rounding) and the same lift (the model's extra state)."""
    assert a.keys() == b.keys()
    for key, value in a.items():
        if not isinstance(value, torch.Tensor):
            assert value == b[key], key
        elif exact:
            assert torch.equal(value, b[key]), key
        else:
            torch.testing.assert_close(value, b[key], rtol=1e-5, atol=1e-6,
                                       msg=key)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def root(qm9_root, tmp_path):
    # Unprocessed: rank 0 processes it while rank 1 waits.
    shutil.copytree(qm9_root / 'raw', tmp_path / 'QM9' / 'raw')
    return tmp_path / 'QM9'


def torchrun(args, nproc: int = 2) -> str:
    r"""Runs examples/qm9.py in :obj:`nproc` CPU processes; returns what
    they printed."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1')
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        env.pop(name, None)
    if sys.platform.startswith('linux'):  # loopback only
        env.setdefault('GLOO_SOCKET_IFNAME', 'lo')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
           str(nproc), '--master_addr', '127.0.0.1', '--master_port',
           str(free_port()), 'examples/qm9.py'] + list(args)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def checkpoint(out: Path) -> dict:
    return torch.load(out / 'checkpoint.pt', weights_only=False)


def test_two_processes_match_one(run_example, root, tmp_path):
    out = torchrun(['--root', str(root), '--out', str(tmp_path / 'ddp')]
                   + ARGS)
    # Rank 0 alone prints (once) and writes the checkpoints, which hold the
    # random state of both processes.
    assert out.count('12 / 2 / 2 train / val / test') == 1, out
    assert '2 process(es) of batch 2' in out
    assert out.count('test MAE U0') == 1
    ddp = checkpoint(tmp_path / 'ddp')
    assert len(ddp['rng']) == 2

    # One process with the global batch of 4 sees the same batches (3 steps
    # of 12 molecules): the same losses and, up to rounding, weights.
    run_example('qm9', '--root', str(root), '--out', str(tmp_path / 'one'),
                *ARGS)
    one = checkpoint(tmp_path / 'one')
    assert len(one['rng']) == 1
    for a, b in zip(ddp['state']['history'], one['state']['history'],
                    strict=True):
        assert a['train_loss'] == pytest.approx(b['train_loss'], rel=1e-5)
        assert a['val_mae'] == pytest.approx(b['val_mae'], rel=1e-5)
    assert_same_weights(ddp['model'], one['model'], exact=False)


def test_resume_with_two_processes(run_example, root, tmp_path):
    r"""A run of one process, resumed for a second epoch by two processes,
    ends as when one process resumes it (no random draws, and the same
    global batches for any number of processes), up to rounding."""
    args = ['--root', str(root)] + ARGS
    run_example('qm9', *args, '--out', str(tmp_path / 'one'))
    shutil.copytree(tmp_path / 'one', tmp_path / 'two')
    run_example('qm9', *args, '--epochs', '2', '--resume', '--out',
                str(tmp_path / 'one'))
    out = torchrun(args + ['--epochs', '2', '--resume', '--out',
                           str(tmp_path / 'two')])
    assert out.count('resumed from epoch 1') == 1, out
    assert 'written by 1 process(es), resuming with 2' in out
    one, two = checkpoint(tmp_path / 'one'), checkpoint(tmp_path / 'two')
    assert one['state']['epoch'] == two['state']['epoch'] == 2
    assert len(two['rng']) == 2
    assert one['state']['history'][0] == two['state']['history'][0]
    second = one['state']['history'][1], two['state']['history'][1]
    assert second[0]['train_loss'] == pytest.approx(second[1]['train_loss'],
                                                    rel=1e-5)
    assert second[0]['val_mae'] == pytest.approx(second[1]['val_mae'],
                                                 rel=1e-5)
    assert_same_weights(one['model'], two['model'], exact=False)


def test_batch_size_must_divide(root, tmp_path):
    out = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         '2', '--master_addr', '127.0.0.1', '--master_port', str(free_port()),
         'examples/qm9.py', '--root', str(root), '--out', str(tmp_path)] +
        ARGS + ['--batch-size', '5'], cwd=REPO, capture_output=True,
        text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1', GLOO_SOCKET_IFNAME='lo'))
    assert out.returncode != 0
    assert '--batch-size (5) must be divisible by the number of processes ' \
        '(2)' in out.stderr
