r"""Models."""
from torch_lie.nn.models.dynamics import (
    Dynamics,
    HamiltonianDynamics,
    LiePotential,
    MLPDynamics,
    MLPPotential,
    SeparableHamiltonian,
)
from torch_lie.nn.models.lie_transformer import (
    LieTransformer,
    LieTransformerBlock,
    paper_config,
)
from torch_lie.nn.models.transformer import PointCloudTransformer

__all__ = [
    'LieTransformer',
    'LieTransformerBlock',
    'Dynamics',
    'HamiltonianDynamics',
    'SeparableHamiltonian',
    'LiePotential',
    'MLPDynamics',
    'MLPPotential',
    'PointCloudTransformer',
    'paper_config',
]
