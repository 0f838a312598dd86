r"""The QM9 task of the `"LieTransformer: Equivariant Self-Attention for Lie
Groups" <https://arxiv.org/abs/2012.10885>`_ paper, around PyG's own
:class:`torch_geometric.datasets.QM9` (no copy of the data set code):

* :class:`QM9Target`: picks one of the paper's 12 targets by name, in the
  paper's units (energies in meV), with the atom reference energies
  subtracted from :math:`U_0, U, H, G`; :func:`qm9_targets` computes all of
  them at once (for standardisation);
* :func:`qm9_features` / :class:`QM9Features`: the paper's 15 atom features;
* :func:`qm9_split`: the seeded 100,000 / 17,748 / 13,083 split;
* the data itself, offline: :func:`~torch_lie.datasets.prepare_qm9` writes
  all of QM9 into :obj:`root/raw` from the registry package qm9pack.

.. code-block:: python

    from torch_geometric.datasets import QM9
    from torch_geometric.transforms import Compose
    from torch_lie.datasets import prepare_qm9
    from torch_lie.datasets.qm9 import QM9Features, QM9Target, qm9_split
    from torch_lie.transforms import Lift

    prepare_qm9('data/QM9')  # once, offline: pip install 'torch-lie[qm9]'
    dataset = QM9('data/QM9', transform=Compose([
        QM9Target('homo'), QM9Features(), Lift('SE3', num_samples=4)]))
    train_idx, val_idx, test_idx = qm9_split(len(dataset), seed=0)

PyG's columns (see the table in :class:`torch_geometric.datasets.QM9`):
:obj:`y[:, 0..11]` are :math:`\mu` (D), :math:`\alpha` (:math:`a_0^3`),
HOMO, LUMO, gap (eV), :math:`\langle R^2 \rangle` (:math:`a_0^2`), ZPVE,
:math:`U_0, U, H, G` (eV, *total* energies) and :math:`c_v`
(cal/mol K); columns 12-15 are atomisation energies (eV) and 16-18 the
rotational constants (GHz).
"""
import copy
from typing import (
    Any,
    Callable,
    Dict,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform, Compose

from torch_lie.groups import SE3, T, group_resolver
from torch_lie.transforms.random_rotation import RandomRotation

__all__ = [
    'QM9_TARGETS',
    'QM9_SPLIT',
    'QM9_ELEMENTS',
    'QM9_PAPER_MAE',
    'qm9_paper_mae',
    'QM9TargetInfo',
    'qm9_target_info',
    'qm9_atomref',
    'qm9_targets',
    'QM9Target',
    'qm9_features',
    'QM9Features',
    'qm9_split',
    'qm9_paper_splits',
]


class QM9TargetInfo(NamedTuple):
    r"""How one of the paper's targets is read from PyG's QM9."""
    name: str  #: The paper's name.
    index: int  #: Column of PyG's :obj:`y [1, 19]`.
    scale: float  #: Factor from PyG's unit to the paper's.
    unit: str  #: The paper's unit.
    atomref: bool  #: Whether atom reference energies are subtracted.
    description: str


#: The 12 targets of the paper, by name. Energies are stored in eV by PyG and
#: reported in meV by the paper; :math:`U_0, U, H, G` are PyG's *total*
#: energies (columns 7-10) minus the atom reference energies (atomisation
#: energies).
QM9_TARGETS: Dict[str, QM9TargetInfo] = {
    info.name: info
    for info in [
        QM9TargetInfo('mu', 0, 1.0, 'D', False, 'dipole moment'),
        QM9TargetInfo('alpha', 1, 1.0, 'a0^3', False,
                      'isotropic polarisability'),
        QM9TargetInfo('homo', 2, 1000.0, 'meV', False, 'HOMO energy'),
        QM9TargetInfo('lumo', 3, 1000.0, 'meV', False, 'LUMO energy'),
        QM9TargetInfo('gap', 4, 1000.0, 'meV', False, 'HOMO-LUMO gap'),
        QM9TargetInfo('r2', 5, 1.0, 'a0^2', False,
                      'electronic spatial extent'),
        QM9TargetInfo('zpve', 6, 1000.0, 'meV', False,
                      'zero point vibrational energy'),
        QM9TargetInfo('U0', 7, 1000.0, 'meV', True,
                      'internal energy at 0 K (atomisation)'),
        QM9TargetInfo('U', 8, 1000.0, 'meV', True,
                      'internal energy at 298.15 K (atomisation)'),
        QM9TargetInfo('H', 9, 1000.0, 'meV', True,
                      'enthalpy at 298.15 K (atomisation)'),
        QM9TargetInfo('G', 10, 1000.0, 'meV', True,
                      'free energy at 298.15 K (atomisation)'),
        QM9TargetInfo('Cv', 11, 1.0, 'cal/(mol K)', False,
                      'heat capacity at 298.15 K'),
    ]
}

#: Train / validation / test sizes of the paper's split (130,831 molecules,
#: the size of PyG's QM9).
QM9_SPLIT: Tuple[int, int, int] = (100_000, 17_748, 13_083)

#: Atomic numbers of the elements of QM9 (H, C, N, O, F), in feature order.
QM9_ELEMENTS: Tuple[int, ...] = (1, 6, 7, 8, 9)


#: The paper's test MAE (Table 2) of its two LieTransformers, in the units of
#: :data:`QM9_TARGETS`.
QM9_PAPER_MAE: Dict[str, Dict[str, float]] = {
    'LieTr-T3+aug': {'alpha': 0.082, 'gap': 51, 'homo': 33, 'lumo': 27,
                     'mu': 0.041, 'Cv': 0.035, 'G': 19, 'H': 17, 'r2': 0.448,
                     'U': 16, 'U0': 17, 'zpve': 2.10},
    'LieTr-SE3': {'alpha': 0.104, 'gap': 52, 'homo': 33, 'lumo': 29,
                  'mu': 0.061, 'Cv': 0.041, 'G': 23, 'H': 27, 'r2': 2.29,
                  'U': 26, 'U0': 26, 'zpve': 3.55},
}


def qm9_paper_mae(target: Union[str, QM9TargetInfo],
                  group: str) -> Optional[Tuple[str, float]]:
    r"""The row of :data:`~torch_lie.datasets.qm9.QM9_PAPER_MAE` for a
    LieTransformer of :obj:`group` (:obj:`"T3"`, trained with rotations, or
    :obj:`"SE3"`) and its MAE on :obj:`target`, or :obj:`None` for other
    groups."""
    resolved = group_resolver(group)
    row = ('LieTr-T3+aug' if isinstance(resolved, T) else
           'LieTr-SE3' if type(resolved) is SE3 else None)
    if row is None:
        return None
    return row, QM9_PAPER_MAE[row][qm9_target_info(target).name]


def qm9_target_info(target: Union[str, QM9TargetInfo]) -> QM9TargetInfo:
    r"""Looks a target up by name (case-insensitive, e.g. :obj:`"homo"`,
    :obj:`"U0"`, :obj:`"cv"`); raises a :class:`ValueError` listing the
    valid names otherwise."""
    if isinstance(target, QM9TargetInfo):
        return target
    lookup = {name.lower(): info for name, info in QM9_TARGETS.items()}
    info = lookup.get(str(target).strip().lower())
    if info is None:
        raise ValueError(f"Unknown QM9 target '{target}' (valid targets: "
                         f"{', '.join(QM9_TARGETS)})")
    return info


def qm9_atomref(target: Union[str, QM9TargetInfo]) -> Optional[Tensor]:
    r"""The atom reference energies subtracted from :obj:`target`, in PyG's
    unit (eV), as a float64 table :obj:`[100]` indexed by atomic number
    (zero for elements outside QM9), or :obj:`None` for targets without
    them. The values are those of :meth:`torch_geometric.datasets.QM9.atomref`
    (taken at full precision: that method rounds them to float32, off by
    up to 0.1 meV for F)."""
    info = qm9_target_info(target)
    if not info.atomref:
        return None
    from torch_geometric.datasets.qm9 import atomrefs

    table = torch.zeros(100, dtype=torch.float64)
    table[list(QM9_ELEMENTS)] = torch.tensor(atomrefs[info.index],
                                             dtype=torch.float64)
    return table


def _target_values(y: Tensor, z: Tensor, graph: Optional[Tensor],
                   num_graphs: int, info: QM9TargetInfo) -> Tensor:
    value = y[:, info.index].to(torch.float64)
    table = qm9_atomref(info)
    if table is not None:
        ref = table[z]
        if graph is None:
            value = value - ref.sum()
        else:
            value = value - torch.zeros(num_graphs, dtype=torch.float64
                                        ).index_add_(0, graph, ref)
    return value * info.scale


class QM9Target(BaseTransform):
    r"""Replaces PyG's 19 QM9 targets :obj:`y [1, 19]` by one of the
    paper's, :obj:`y [1, 1]` (float32) in the paper's unit: meV for the
    energies (HOMO, LUMO, gap, ZPVE, :math:`U_0, U, H, G`), with the atom
    reference energies subtracted from the total energies :math:`U_0, U, H,
    G` (computed in float64; needs the atomic numbers :obj:`z`). See
    :data:`~torch_lie.datasets.qm9.QM9_TARGETS`.

    PyG stores :obj:`y` in float32, so its total energies (about
    :math:`10^4` eV) carry a rounding error of up to about 0.5 meV, well
    below the paper's errors (17 meV and more).

    Args:
        target (str): The target's name, one of :obj:`mu, alpha, homo, lumo,
            gap, r2, zpve, U0, U, H, G, Cv` (case-insensitive).
    """
    def __init__(self, target: str):
        self.info = qm9_target_info(target)

    @property
    def target(self) -> str:
        return self.info.name

    def forward(self, data: Data) -> Data:
        y = getattr(data, 'y', None)
        if y is None or y.dim() != 2 or y.size(-1) < 12:
            shape = None if y is None else list(y.shape)
            raise ValueError(f"QM9Target expects PyG's QM9 targets 'y' of "
                             f"shape [1, 19] (got {shape})")
        if self.info.atomref and getattr(data, 'z', None) is None:
            raise ValueError(f"QM9Target('{self.target}') needs the atomic "
                             f"numbers 'z' to subtract atom references")
        value = _target_values(y, data.z, None, 1, self.info)
        out = copy.copy(data)
        out.y = value.to(torch.float32).view(1, 1)
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}('{self.target}')"


def qm9_targets(dataset, target: Union[str, QM9TargetInfo]) -> Tensor:
    r"""The values of :obj:`target` (as :class:`QM9Target` computes them,
    in float64) of every molecule of :obj:`dataset` (PyG's
    :class:`~torch_geometric.datasets.QM9` or a subset of it, e.g.
    :obj:`dataset[train_idx]`), as :obj:`[len(dataset)]`, without running
    its transform: for standardising the target on the training set."""
    info = qm9_target_info(target)
    store = getattr(dataset, '_data', None)
    slices = getattr(dataset, 'slices', None)
    if store is None or slices is None or 'z' not in slices:
        values = []
        for i in range(len(dataset)):
            data = dataset.get(i) if hasattr(dataset, 'get') else dataset[i]
            values.append(_target_values(data.y, data.z, None, 1, info))
        return torch.cat(values) if values else torch.zeros(
            0, dtype=torch.float64)
    counts = slices['z'].diff()
    num_graphs = counts.numel()
    graph = torch.arange(num_graphs).repeat_interleave(counts)
    values = _target_values(store.y, store.z, graph, num_graphs, info)
    return values[torch.as_tensor(list(dataset.indices()), dtype=torch.long)]


def qm9_features(z: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""The paper's atom features :obj:`[N, 15]` of atomic numbers
    :obj:`z [N]`: the one-hot element (H, C, N, O, F) times
    :math:`[1, z/9, (z/9)^2]`, flattened element-major (column
    :obj:`3 * e + k` holds :math:`\mathrm{onehot}_e \cdot (z/9)^k`).
    Raises a :class:`ValueError` naming any other element."""
    z = torch.as_tensor(z)
    if z.dim() != 1 or z.is_floating_point():
        raise ValueError(f"'z' must be a 1-D tensor of atomic numbers (got "
                         f"{z.dtype} {list(z.shape)})")
    z = z.long()
    lookup = torch.full((max(int(z.max()) if z.numel() else 0, 9) + 1, ),
                        -1, dtype=torch.long, device=z.device)
    lookup[list(QM9_ELEMENTS)] = torch.arange(len(QM9_ELEMENTS),
                                              device=z.device)
    index = lookup[z.clamp(min=0)]
    bad = (index < 0) | (z < 0)
    if bool(bad.any()):
        from ase.data import chemical_symbols

        names = sorted({(chemical_symbols[i] if 0 < i < len(chemical_symbols)
                         else f'Z={i}') for i in z[bad].tolist()})
        raise ValueError(f"QM9 features cover H, C, N, O and F only (got "
                         f"{', '.join(names)})")
    onehot = torch.nn.functional.one_hot(index, len(QM9_ELEMENTS)).to(dtype)
    powers = (z.to(dtype)[:, None] / 9.0)**torch.arange(
        3, dtype=dtype, device=z.device)
    return (onehot[:, :, None] * powers[:, None, :]).reshape(z.numel(), 15)


class QM9Features(BaseTransform):
    r"""Sets the atom features :obj:`x [N, 15]` to :func:`qm9_features` of
    the atomic numbers :obj:`z` (replacing PyG's 11 QM9 features)."""
    def forward(self, data: Data) -> Data:
        if getattr(data, 'z', None) is None:
            raise ValueError("QM9Features needs the atomic numbers 'z'")
        dtype = data.pos.dtype if getattr(data, 'pos', None) is not None \
            else torch.float32
        out = copy.copy(data)
        out.x = qm9_features(data.z, dtype)
        return out


def qm9_split(num_graphs: int, seed: int = 0,
              sizes: Optional[Sequence[int]] = None
              ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""A seeded random train / validation / test split of
    :obj:`num_graphs` molecules, as index tensors.

    By default the sizes are the paper's
    :data:`~torch_lie.datasets.qm9.QM9_SPLIT` (100,000 / 17,748 / 13,083)
    scaled to :obj:`num_graphs` (exactly those for PyG's
    130,831 molecules): validation and test get their rounded shares, at
    least one molecule each, and training the rest. Explicit :obj:`sizes`
    :obj:`(train, val, test)` may sum to less than :obj:`num_graphs` (the
    rest is left out). The same :obj:`seed` and sizes always give the same
    split.
    """
    if sizes is None:
        total = sum(QM9_SPLIT)
        num_val = max(1, round(num_graphs * QM9_SPLIT[1] / total))
        num_test = max(1, round(num_graphs * QM9_SPLIT[2] / total))
        sizes = (num_graphs - num_val - num_test, num_val, num_test)
        if sizes[0] < 1:
            raise ValueError(f"Cannot split {num_graphs} molecules into "
                             f"train / validation / test (need at least 3)")
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) != 3 or min(sizes) < 0 or sum(sizes) > num_graphs:
        raise ValueError(f"'sizes' must be three non-negative sizes (train, "
                         f"val, test) summing to at most {num_graphs} "
                         f"(got {sizes})")
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(num_graphs, generator=generator)
    a, b = sizes[0], sizes[0] + sizes[1]
    return perm[:a], perm[a:b], perm[b:b + sizes[2]]


def qm9_paper_splits(dataset, target: Union[str, QM9TargetInfo],
                     seed: int = 0, sizes: Optional[Sequence[int]] = None,
                     augment: bool = False,
                     transform: Optional[Callable] = None) -> List[Any]:
    r"""The train, validation and test subsets (:func:`qm9_split`) of
    PyG's :class:`~torch_geometric.datasets.QM9` :obj:`dataset`, whose
    molecules are read with one of the paper's targets
    (:class:`QM9Target`) and its features (:class:`QM9Features`), then
    rotated at random for training if :obj:`augment`
    (:class:`~torch_lie.transforms.RandomRotation`), then passed to
    :obj:`transform` (e.g. a model's :class:`~torch_lie.transforms.Lift`).
    """
    plain = [QM9Target(qm9_target_info(target).name), QM9Features()]
    last = [] if transform is None else [transform]
    splits = [dataset.index_select(index)
              for index in qm9_split(len(dataset), seed, sizes)]
    for split, extra in zip(splits, ([RandomRotation()] if augment else [],
                                     [], [])):
        split.transform = Compose(plain + extra + last)
    return splits
