import pytest
import torch

from torch_lie.groups import SE2, SE3, SO3, T
from torch_lie.testing import (
    assert_equivariant,
    assert_invariant_in_distribution,
    assert_lifted_invariant,
    equivariance_error,
)


def pairwise_distances(pos):
    return torch.cdist(pos, pos).sort(-1).values


def test_invariant_function_passes(ethanol):
    errors = assert_equivariant(pairwise_distances, ethanol[0], SE3(),
                                num_elements=8)
    assert errors[torch.float64] < 1e-12
    assert errors[torch.float32] < 1e-5


def test_equivariant_function_passes_with_output_action(ethanol):
    group = SE3()
    centroid = lambda pos: pos.mean(0)  # noqa: E731
    errors = assert_equivariant(centroid, ethanol[0], group, act_out=group.act)
    assert errors[torch.float64] < 1e-12


def test_non_invariant_function_fails(ethanol):
    with pytest.raises(AssertionError, match='Not invariant under SE3'):
        assert_equivariant(lambda pos: pos.sum(0), ethanol[0], SE3())
    # Invariant to translations only.
    assert_equivariant(pairwise_distances, ethanol[0], T(3))
    with pytest.raises(AssertionError, match='Not equivariant'):
        assert_equivariant(lambda pos: pos.mean(0), ethanol[0], SO3(),
                           act_out=lambda h, y: y)


def test_float32_is_checked_against_its_own_tolerance(ethanol):
    r"""A function exact in float64 but rounded in float32 passes only with
    the float32 tolerance it deserves."""
    fn = pairwise_distances
    with pytest.raises(AssertionError, match='float32'):
        assert_equivariant(fn, ethanol[0], SE3(),
                           tolerances={torch.float32: 1e-12})


def test_elements_action_and_explicit_elements():
    group = SE2()
    g = group.sample(5, torch.Generator().manual_seed(0), torch.float64)

    def relative(g):
        return group.log(group.compose(group.inv(g[:-1]), g[1:]))

    h = group.sample(3, torch.Generator().manual_seed(1), torch.float64)
    err = equivariance_error(relative, g, group.compose, h)
    assert err < 1e-12
    assert equivariance_error(lambda g: group.log(g), g, group.compose, h) > 0.1
    with pytest.raises(ValueError, match="'on'"):
        assert_equivariant(relative, g, group, on='features')


def test_in_distribution():
    pos = torch.randn(6, 3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)

    def noisy_invariant(p):
        noise = 0.1 * torch.randn(1, generator=gen, dtype=p.dtype)
        return pairwise_distances(p).sum(-1) + noise

    assert assert_invariant_in_distribution(noisy_invariant, pos, SE3()) < 5
    with pytest.raises(AssertionError, match='standard errors'):
        assert_invariant_in_distribution(
            lambda p: p[:, 0] + 0.1 * torch.randn(1, generator=gen,
                                                  dtype=p.dtype), pos, SE3())

    # Nothing passes untested: NaN or infinite outputs, one draw, no
    # elements.
    for bad in (float('nan'), float('inf')):
        with pytest.raises(AssertionError, match='not finite'):
            assert_invariant_in_distribution(
                lambda p, bad=bad: pairwise_distances(p).sum(-1) * bad, pos,
                SE3())
    with pytest.raises(ValueError, match="'num_draws' must be >= 2"):
        assert_invariant_in_distribution(lambda p: p[:, 0], pos, SE3(),
                                         num_draws=1)
    with pytest.raises(ValueError, match="'num_elements' must be >= 1"):
        assert_invariant_in_distribution(lambda p: p[:, 0], pos, SE3(),
                                         num_elements=0)
    with pytest.raises(ValueError, match="'num_elements' must be >= 1"):
        assert_equivariant(lambda p: p[:, 0], pos, SE3(), num_elements=0)
    with pytest.raises(ValueError, match="'elements' is empty"):
        assert_equivariant(lambda p: p[:, 0], pos, SE3(),
                           elements=SE3().sample(0, dtype=torch.float64))
    with pytest.raises(AssertionError, match='largest error nan'):
        assert_equivariant(lambda p: p * float('nan'), pos, SE3())


def test_lifted_invariance_of_a_model_and_a_negative_control():
    from torch_geometric.data import Data

    from torch_lie.nn import LieTransformer
    from torch_lie.transforms import Lift

    torch.manual_seed(0)
    data = Data(pos=torch.randn(7, 3, dtype=torch.float64),
                x=torch.randn(7, 4, dtype=torch.float64))
    model = LieTransformer(4, 8, 2, lift=Lift('SE3', num_samples=2),
                           num_layers=1, heads=2, kernel_dim=4).double().eval()
    with torch.no_grad():
        errors = assert_lifted_invariant(model, data)
    assert errors[torch.float64] < 1e-12 and errors[torch.float32] < 1e-5
    assert next(model.parameters()).dtype == torch.float64  # not cast

    class Leaky(torch.nn.Module):  # sees the raw elements: not invariant
        def __init__(self):
            super().__init__()
            self.inner = model
            self.lift = model.lift

        def forward(self, lifted):
            return self.inner(lifted) + lifted.g.sum()

    with pytest.raises(AssertionError, match='acting on elements'):
        with torch.no_grad():
            assert_lifted_invariant(Leaky(), data)
