r"""The constellation models: the LieTransformer's invariance on real
constellations (with negative controls) and the baseline, batched."""
import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from torch_lie.datasets.constellation import (
    constellation_distance_features,
    generate_constellations,
)
from torch_lie.groups import SE2, T
from torch_lie.nn import LieTransformer
from torch_lie.nn.models import PointCloudTransformer
from torch_lie.testing import assert_equivariant
from torch_lie.transforms import Lift


def constellation(seed=0):
    batch = generate_constellations(1, torch.Generator().manual_seed(seed))
    return batch.pos[0][batch.mask[0]]


def as_data(pos):
    return Data(pos=pos, x=constellation_distance_features(pos))


def model_fn(model):
    def fn(pos):
        model.to(pos.dtype)
        return model(as_data(pos))[0]

    return fn


def quarter_turns():
    group = SE2(4)
    angles = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64) * math.pi
    zero = torch.zeros(3, dtype=torch.float64)
    rotations = group.exp(torch.stack([angles, zero, zero], -1))
    with_shift = group.exp(torch.tensor([[0.5 * math.pi, 0.3, -2.0]],
                                        dtype=torch.float64))
    return torch.cat([rotations, with_shift])


def lie(group, kernel_dim=16):
    return LieTransformer(33, 16, 12, lift=Lift(group), num_layers=2,
                          heads=2, kernel_dim=kernel_dim)


def test_se2_c4_model_is_invariant_to_quarter_turns():
    torch.manual_seed(0)
    model = lie('SE2-C4', kernel_dim=8).eval()
    pos = constellation()
    errors = assert_equivariant(model_fn(model), pos, SE2(4),
                                elements=quarter_turns(),
                                dtypes=(torch.float64, ))
    assert errors[torch.float64] < 1e-9
    # Negative controls: a T2 model and the transformer baseline are not.
    t2 = lie('T2').eval()
    with pytest.raises(AssertionError, match='Not invariant'):
        assert_equivariant(model_fn(t2), pos, SE2(4),
                           elements=quarter_turns(), dtypes=(torch.float64, ))
    assert_equivariant(model_fn(t2), pos, T(2), dtypes=(torch.float64, ))
    baseline = PointCloudTransformer(33, 16, 12, 2, 2).eval()
    with pytest.raises(AssertionError, match='Not invariant'):
        assert_equivariant(model_fn(baseline), pos, T(2),
                           dtypes=(torch.float64, ))


@pytest.mark.parametrize('group, kernel', [('SE2-C4', 'auto'),
                                           ('SE2-C4', 'sparse'),
                                           ('SE2-C4', 'dense'),
                                           (None, None)])
def test_batching_does_not_change_predictions(group, kernel):
    torch.manual_seed(0)
    model = (PointCloudTransformer(33, 16, 12, 2, 2) if group is None else
             lie(group)).double().eval()
    if kernel is not None:
        model.kernel = kernel
    data = [as_data(constellation(s).double()) for s in (1, 2)]
    assert data[0].num_nodes != data[1].num_nodes
    alone = torch.cat([model(d) for d in data])
    # Constellations of different sizes in one batch (padded, or sparse
    # edges), and of equal size.
    mixed = model(Batch.from_data_list([data[1], data[0], data[1]]))
    equal = model(Batch.from_data_list([data[1], data[1]]))
    assert mixed.shape == (3, 12)
    torch.testing.assert_close(mixed, alone[[1, 0, 1]], rtol=0, atol=1e-10)
    torch.testing.assert_close(equal, alone[[1, 1]], rtol=0, atol=1e-10)
