r"""Testing utilities."""
from torch_lie.testing.equivariance import (
    TOLERANCES,
    assert_equivariant,
    assert_invariant_in_distribution,
    equivariance_error,
)

__all__ = [
    'TOLERANCES',
    'assert_equivariant',
    'assert_invariant_in_distribution',
    'equivariance_error',
]
