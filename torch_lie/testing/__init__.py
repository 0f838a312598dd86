r"""Testing utilities."""
from torch_lie.testing.equivariance import (
    TOLERANCES,
    assert_equivariant,
    assert_invariant_in_distribution,
    assert_lifted_invariant,
    equivariance_error,
)

__all__ = [
    'TOLERANCES',
    'assert_equivariant',
    'assert_invariant_in_distribution',
    'assert_lifted_invariant',
    'equivariance_error',
]
