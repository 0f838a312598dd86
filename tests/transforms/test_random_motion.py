import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.transforms import Compose

from torch_lie.transforms import Lift, RandomMotion, RandomRotation


def test_moves_positions_rigidly_and_anew():
    pos = torch.randn(6, 3, dtype=torch.float64)
    data = Data(pos=pos, x=torch.ones(6, 1))
    transform = RandomMotion('SE3')
    torch.manual_seed(0)
    first, second = transform(data), transform(data)
    assert torch.equal(data.pos, pos)  # not in place
    assert torch.equal(first.x, data.x)
    for moved in (first, second):
        torch.testing.assert_close(torch.cdist(moved.pos, moved.pos),
                                   torch.cdist(pos, pos))
        assert not torch.allclose(moved.pos.mean(0), pos.mean(0))  # translated
    assert not torch.allclose(first.pos, second.pos)
    torch.manual_seed(0)
    assert torch.equal(transform(data).pos, first.pos)  # seeded
    assert repr(transform) == 'RandomMotion(SE3())'


def test_translations_only_and_bad_input():
    pos = torch.randn(5, 2)
    moved = RandomMotion('T2')(Data(pos=pos))
    shift = moved.pos - pos
    torch.testing.assert_close(shift, shift[:1].expand_as(shift))
    with pytest.raises(ValueError, match=r"'pos' must have shape \[N, 3\]"):
        RandomMotion('SE3')(Data(pos=pos))


@pytest.mark.parametrize('transform', [RandomMotion('SE3'), RandomRotation()])
def test_moving_lifted_data_is_refused(ethanol, transform):
    r"""After the lift, only pos would move (its elements and pair
    embeddings stay those of the old points): the transform refuses, naming
    the order that works; before the lift it moves the points."""
    pos, x = ethanol
    lift = Lift('SE3', 2)
    with pytest.raises(ValueError, match=r'before the lift.*Compose'):
        Compose([lift, transform])(Data(pos=pos, x=x))
    torch.manual_seed(0)
    out = Compose([transform, lift])(Data(pos=pos, x=x))
    assert not torch.allclose(out.pos, pos)
    assert torch.allclose(torch.cdist(out.pos, out.pos), torch.cdist(pos, pos))
