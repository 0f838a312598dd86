import os

import pytest
import torch

from torch_lie.pretrained import (
    available,
    from_pretrained,
    pretrained_info,
    save_pretrained,
)


def test_shipped_models_load_and_predict():
    assert available() == ['constellation-t2', 'qm9-homo-t3', 'springs-t2']
    springs = from_pretrained('springs-t2')
    info = pretrained_info('springs-t2')
    assert 'examples/spring_dynamics.py' in info['command']
    assert 0 < info['metrics']['test_mse_5'] < 1e-3
    z0 = torch.randn(3, 2, 6, 2)
    sys_params = torch.rand(3, 6, 2) + 0.5
    pred = springs.rollout(z0, torch.linspace(0, 0.04, 5), sys_params)
    assert pred.shape == (3, 5, 2, 6, 2) and torch.isfinite(pred).all()

    counter = from_pretrained('constellation-t2')
    info = pretrained_info('constellation-t2')
    assert 'examples/constellation.py' in info['command']
    assert info['metrics']['test_accuracy'] > 0.6
    assert not counter.training

    # QM9's HOMO (meV) from a T(3) model trained here on 10,000 molecules.
    homo = from_pretrained('qm9-homo-t3')
    info = pretrained_info('qm9-homo-t3')
    assert 'examples/qm9.py' in info['command']
    metrics = info['metrics']
    assert metrics['config']['target'] == 'homo' and metrics['unit'] == 'meV'
    assert metrics['split'] == [10_000, 1_000, 13_083]
    assert 200 < metrics['test_mae'] < 300
    from ase.build import molecule
    from torch_geometric.data import Data

    from torch_lie.datasets.qm9 import qm9_features
    atoms = molecule('CH4')
    z = torch.tensor(atoms.numbers)
    pred = homo(Data(pos=torch.tensor(atoms.positions).float(),
                     x=qm9_features(z), z=z))
    value = float(pred.detach()) * metrics['target_std'] + metrics['target_mean']
    assert -13_000 < value < -8_000  # methane's HOMO is -10,550 meV
    import torch_lie.pretrained
    folder = os.path.dirname(torch_lie.pretrained.__file__)
    assert os.path.getsize(os.path.join(folder, 'qm9-homo-t3.pt')) < 10e6


def test_save_and_load_a_file(tmp_path):
    kwargs = dict(group='T2', in_channels=3, hidden_channels=8,
                  out_channels=2, num_layers=1, heads=2, kernel_dim=4)
    from torch_lie.pretrained import BUILDERS
    model = BUILDERS['lie_transformer'](**kwargs)
    path = str(tmp_path / 'mine.pt')
    save_pretrained(model, path, 'lie_transformer', kwargs, {'accuracy': 0.5},
                    command='python x.py')
    loaded = from_pretrained(path)
    for a, b in zip(model.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(a, b)
    assert pretrained_info(path)['metrics'] == {'accuracy': 0.5}
    assert pretrained_info(path)['command'] == 'python x.py'
    save_pretrained(model, path, 'lie_transformer', kwargs)
    assert pretrained_info(path)['command'].startswith('python ')


def test_unknown_names_and_files(tmp_path):
    with pytest.raises(ValueError, match="No pretrained model 'nope' "
                       r"\(shipped: constellation-t2, qm9-homo-t3, springs-t2"):
        from_pretrained('nope')
    path = tmp_path / 'bad.pt'
    path.write_bytes(b'garbage')
    with pytest.raises(ValueError, match='bad.pt\' is not a readable checkpoint'):
        from_pretrained(str(path))
    torch.save({'model': {}}, path)
    with pytest.raises(ValueError, match='not written by save_pretrained'):
        from_pretrained(str(path))
    with pytest.raises(ValueError, match="Unknown builder 'x'"):
        save_pretrained(torch.nn.Linear(1, 1), str(path), 'x', {})
