r"""Data sets of the LieTransformer tasks."""
from torch_lie.datasets.constellation import (
    CONSTELLATION_SHAPES,
    Constellation,
    ConstellationBatch,
    constellation_distance_features,
    constellation_patterns,
    generate_constellations,
)
from torch_lie.datasets.qm9 import (
    QM9_ELEMENTS,
    QM9_SPLIT,
    QM9_TARGETS,
    QM9Features,
    QM9Target,
    QM9TargetInfo,
    qm9_atomref,
    qm9_features,
    qm9_split,
    qm9_target_info,
    qm9_targets,
    write_qm9_raw,
)
from torch_lie.datasets.spring_dynamics import (
    SpringDynamics,
    SpringSample,
    spring_hamiltonian,
    spring_vector_field,
)

__all__ = [
    'Constellation',
    'ConstellationBatch',
    'CONSTELLATION_SHAPES',
    'constellation_distance_features',
    'constellation_patterns',
    'generate_constellations',
    'SpringDynamics',
    'SpringSample',
    'spring_hamiltonian',
    'spring_vector_field',
    'QM9_ELEMENTS',
    'QM9_SPLIT',
    'QM9_TARGETS',
    'QM9Features',
    'QM9Target',
    'QM9TargetInfo',
    'qm9_atomref',
    'qm9_features',
    'qm9_split',
    'qm9_target_info',
    'qm9_targets',
    'write_qm9_raw',
]
