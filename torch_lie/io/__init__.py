r"""Reading and writing other libraries' molecule formats."""
from torch_lie.io.ase import (
    LieCalculator,
    atoms_to_data,
    data_to_atoms,
    read_molecule,
)

__all__ = [
    'atoms_to_data',
    'data_to_atoms',
    'read_molecule',
    'LieCalculator',
]
