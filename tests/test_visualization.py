import torch

from torch_lie.datasets.constellation import Constellation
from torch_lie.visualization import (
    plot_constellations,
    plot_predictions,
    plot_rollout_error,
    plot_trajectories,
)


def test_plots_are_written(tmp_path):
    data = Constellation(str(tmp_path / 'data'), num_samples=5, log=False)
    assert data.num_points.tolist() == [d.num_nodes for d in data]
    assert data[1:3].num_points.tolist() == data.num_points[1:3].tolist()
    pred = data.y.clone()
    pred[0, 0] = (pred[0, 0] + 1) % 3
    plot_constellations(str(tmp_path / 'c.png'), data, pred, num=4)
    z = torch.randn(4, 10, 2, 6, 2)
    plot_trajectories(str(tmp_path / 't.png'), z + 0.1, z, num_systems=2)
    plot_rollout_error(str(tmp_path / 'e.png'),
                       {'a': torch.rand(8, 10), 'b': torch.rand(8, 10)},
                       dt=0.01, train_steps=4)
    for name in ('c.png', 't.png', 'e.png'):
        assert (tmp_path / name).stat().st_size > 10_000


def test_plot_predictions(tmp_path):
    true = torch.linspace(-1, 1, 20)
    path = tmp_path / 'parity.png'
    plot_predictions(str(path), {'a': (true + 0.1, true), 'b': (true, true)},
                     'true value')
    assert path.stat().st_size > 0
    plot_predictions(str(path), {'only': (true, true)})  # a single panel
