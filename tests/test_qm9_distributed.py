r"""examples/qm9.py trained data-parallel by two CPU processes under
:obj:`torch.distributed.run` (torchrun, backend gloo, loopback only) on a
small QM9 written from ASE molecules: the processes end with the same
weights, and train as a single process with the same global batch does."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from ase.build import molecule

from torch_lie.datasets.qm9 import write_qm9_raw
from torch_lie.training import DistributedContext

pytestmark = pytest.mark.skipif(not dist.is_available(),
                                reason='torch.distributed is not available')

REPO = Path(__file__).resolve().parents[1]
NAMES = ['CH4', 'NH3', 'H2O', 'HF', 'CH3CH2OH', 'C6H6', 'CH3OH', 'HCN',
         'CO2', 'HCOOH', 'CH3CN', 'H2CO', 'C2H2', 'C2H4', 'C2H6', 'CH3NO2']
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


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only synchronise
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def root(tmp_path):
    try:
        import rdkit  # noqa: F401
        pytest.skip('rdkit is installed: PyG QM9 reads other raw files')
    except ImportError:
        pass
    y = torch.randn(len(NAMES), 19,
                    generator=torch.Generator().manual_seed(0))
    y[:, 7:11] -= 1000.0  # total energies
    # Unprocessed: rank 0 processes it while rank 1 waits.
    write_qm9_raw([molecule(name) for name in NAMES], y,
                  tmp_path / 'QM9' / 'raw' / 'qm9_v3.pt')
    return tmp_path / 'QM9'


def torchrun(args, dump_dir, nproc: int = 2) -> str:
    r"""Runs examples/qm9.py in :obj:`nproc` CPU processes; returns what
    they printed."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1',
               TORCH_LIE_QM9_DUMP_DIR=str(dump_dir))
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        env.pop(name, None)
    if sys.platform.startswith('linux'):  # loopback only
        env.setdefault('GLOO_SOCKET_IFNAME', 'lo')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
           str(nproc), '--master_addr', '127.0.0.1', '--master_port',
           str(free_port()), 'examples/qm9.py'] + list(args)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_two_processes_match_one(load_example, root, tmp_path, monkeypatch):
    out = torchrun(['--root', str(root), '--out', str(tmp_path / 'ddp')]
                   + ARGS, tmp_path / 'ddp-dump')
    # Rank 0 alone prints (once) and writes the checkpoints.
    assert out.count('12 train / 2 val / 2 test') == 1, out
    assert '2 processes of batch 2' in out
    assert out.count('test MAE U0') == 1
    ranks = [torch.load(tmp_path / 'ddp-dump' / f'rank{r}.pt',
                        weights_only=True) for r in (0, 1)]
    assert [d['world_size'] for d in ranks] == [2, 2]

    # (1) Both processes end with the same weights, those of the checkpoint,
    # and report the same (all-reduced) metrics.
    ckpt = torch.load(tmp_path / 'ddp' / 'checkpoint.pt', weights_only=True)
    assert ckpt['world_size'] == 2 and len(ckpt['rng_states']) == 2
    assert_same_weights(ranks[0]['model'], ranks[1]['model'])
    assert_same_weights(ranks[0]['model'], ckpt['model'])
    def metrics(history):  # without the epochs' times, measured per process
        return [(h['train_loss'], h['val_mae']) for h in history]

    assert metrics(ranks[0]['history']) == metrics(ranks[1]['history']) == \
        metrics(ckpt['history'])

    # (2) One process with the global batch of 4 sees the same batches: 3
    # steps of 12 molecules; its loss of each step is the mean of the two
    # processes' losses (2 molecules each), exactly so for the first step.
    monkeypatch.setenv('TORCH_LIE_QM9_DUMP_DIR', str(tmp_path / 'one-dump'))
    single = load_example('qm9').main(
        ['--root', str(root), '--out', str(tmp_path / 'one')] + ARGS)
    one = torch.load(tmp_path / 'one-dump' / 'rank0.pt', weights_only=True)
    assert one['world_size'] == 1 and len(one['step_losses']) == 3
    ddp_losses = [(a + b) / 2 for a, b in zip(ranks[0]['step_losses'],
                                              ranks[1]['step_losses'])]
    assert len(ddp_losses) == 3
    assert ddp_losses[0] == pytest.approx(one['step_losses'][0], rel=1e-6)
    assert ddp_losses == pytest.approx(one['step_losses'], rel=1e-5)
    ddp_epoch, one_epoch = ckpt['history'][0], single['history'][0]
    assert ddp_epoch['train_loss'] == pytest.approx(one_epoch['train_loss'],
                                                    rel=1e-5)
    assert ddp_epoch['val_mae'] == pytest.approx(one_epoch['val_mae'],
                                                 rel=1e-5)
    assert_same_weights(ranks[0]['model'], one['model'], exact=False)


def test_resume_with_two_processes(load_example, root, tmp_path, monkeypatch):
    r"""A single-process run interrupted after its first epoch, resumed by
    two processes, ends as the uninterrupted single-process run (no random
    draws, and the same global batches for any number of processes)."""
    qm9 = load_example('qm9')
    args = ['--root', str(root)] + ARGS + ['--epochs', '2']
    full = qm9.main(args + ['--out', str(tmp_path / 'full')])

    evaluate, calls = qm9.evaluate, []

    def interrupted(*a, **kw):  # dies during the second epoch's validation
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(*a, **kw)

    monkeypatch.setattr(qm9, 'evaluate', interrupted)
    part = tmp_path / 'part'
    with pytest.raises(KeyboardInterrupt):
        qm9.main(args + ['--out', str(part)])
    assert torch.load(part / 'checkpoint.pt', weights_only=True)['epoch'] == 1

    out = torchrun(args + ['--out', str(part), '--resume'], tmp_path / 'dump')
    assert out.count('after epoch 1') == 1, out
    assert 'written by 1 process(es), resuming with 2' in out
    ranks = [torch.load(tmp_path / 'dump' / f'rank{r}.pt',
                        weights_only=True) for r in (0, 1)]
    a = torch.load(tmp_path / 'full' / 'checkpoint.pt', weights_only=True)
    b = torch.load(part / 'checkpoint.pt', weights_only=True)
    assert a['epoch'] == b['epoch'] == 2 and b['world_size'] == 2
    for h, g in zip(b['history'], full['history']):
        assert h['train_loss'] == pytest.approx(g['train_loss'], rel=1e-5)
        assert h['val_mae'] == pytest.approx(g['val_mae'], rel=1e-5)
    assert_same_weights(ranks[0]['model'], ranks[1]['model'])
    assert_same_weights(b['model'], a['model'], exact=False)


def test_batch_size_must_divide(load_example, root, tmp_path):
    qm9 = load_example('qm9')
    args = qm9.parse_train_args(['--root', str(root), '--out',
                                 str(tmp_path / 'run')] + ARGS
                                + ['--batch-size', '5'])
    with pytest.raises(ValueError, match=r"'--batch-size' \(5\).*\(2\)"):
        qm9.train(args, DistributedContext(rank=1, world_size=2))
