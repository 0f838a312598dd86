r"""Data sets of the LieTransformer tasks."""
from torch_lie.datasets.spring_dynamics import (
    SpringDynamics,
    SpringSample,
    spring_hamiltonian,
    spring_vector_field,
)

__all__ = [
    'SpringDynamics',
    'SpringSample',
    'spring_hamiltonian',
    'spring_vector_field',
]
