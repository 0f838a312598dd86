r"""Interoperability with the `Atomic Simulation Environment
<https://wiki.fysik.dtu.dk/ase/>`_: conversions between :class:`ase.Atoms`
and PyG :class:`~torch_geometric.data.Data`, reading any file format ASE
reads, and an ASE calculator whose energy is a (LieTransformer) model and
whose forces are its negative gradient.

Units are ASE's: positions in Å; a model used by :class:`LieCalculator`
must return energies in eV (forces come out in eV/Å).
"""
import contextlib
import os
from typing import Callable, List, Optional, Union

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from torch import Tensor
from torch_geometric.data import Batch, Data

from torch_lie.transforms.lift import Lift

Featuriser = Callable[[Tensor], Tensor]

__all__ = ['atoms_to_data', 'data_to_atoms', 'read_molecule', 'LieCalculator']


def atoms_to_data(atoms: Atoms, features: Optional[Featuriser] = None,
                  dtype: torch.dtype = torch.float32) -> Data:
    r"""Converts an :class:`ase.Atoms` object to a
    :class:`~torch_geometric.data.Data` object.

    The result holds :obj:`pos [N, 3]` (in :obj:`dtype`, Å) and the atomic
    numbers :obj:`z [N]` (:obj:`torch.long`). The unit cell and periodic
    boundary conditions are kept when the atoms have a cell or are periodic,
    as :obj:`cell [1, 3, 3]` (rows are the cell vectors, in :obj:`dtype`) and
    :obj:`pbc [1, 3]` (:obj:`torch.bool`), so that they concatenate to
    :obj:`[B, 3, 3]` and :obj:`[B, 3]` in a batch. With a featuriser,
    :obj:`x = features(z)` holds the node features.

    Args:
        atoms (ase.Atoms): The atoms.
        features (callable, optional): Maps atomic numbers :obj:`z [N]` to
            node features :obj:`[N, F]`, e.g.
            :func:`torch_lie.datasets.qm9_features`. Floating-point
            features are cast to :obj:`dtype` (for float64 values computed
            in float64, use e.g. :obj:`partial(qm9_features,
            dtype=torch.float64)`). (default: :obj:`None`)
        dtype (torch.dtype, optional): Floating-point type of :obj:`pos`,
            :obj:`cell` and :obj:`x`. (default: :obj:`torch.float32`)
    """
    if not isinstance(atoms, Atoms):
        raise TypeError(f"'atoms' must be an ase.Atoms object "
                        f"(got {type(atoms).__name__})")
    if not dtype.is_floating_point:
        raise ValueError(f"'dtype' must be a floating-point type "
                         f"(got {dtype})")
    pos = torch.tensor(atoms.get_positions(), dtype=dtype).view(-1, 3)
    z = torch.tensor(atoms.get_atomic_numbers(), dtype=torch.long).view(-1)
    data = Data(pos=pos, z=z)
    if atoms.pbc.any() or atoms.cell.rank > 0:
        data.cell = torch.tensor(atoms.cell.array, dtype=dtype).view(1, 3, 3)
        data.pbc = torch.tensor(atoms.pbc, dtype=torch.bool).view(1, 3)
    if features is not None:
        x = features(z)
        if not isinstance(x, Tensor) or x.dim() != 2 or x.size(0) != len(z):
            shape = list(x.shape) if isinstance(x, Tensor) else type(x)
            raise ValueError(f"'features' must map z [{len(z)}] to a tensor "
                             f"of shape [{len(z)}, F] (got {shape})")
        data.x = x.to(dtype) if x.is_floating_point() else x
    return data


def data_to_atoms(data: Data) -> Atoms:
    r"""Converts a :class:`~torch_geometric.data.Data` object with atomic
    numbers :obj:`z` and positions :obj:`pos` (and optionally :obj:`cell`
    and :obj:`pbc`, as written by :func:`atoms_to_data`) back to an
    :class:`ase.Atoms` object. A batch must hold a single graph (convert
    each one of :obj:`batch.to_data_list()` otherwise)."""
    if isinstance(data, Batch) and data.num_graphs != 1:
        raise ValueError(f"'data' is a batch of {data.num_graphs} graphs: "
                         f"convert each of 'data.to_data_list()'")
    for key in ('z', 'pos'):
        if getattr(data, key, None) is None:
            raise ValueError(f"data_to_atoms needs the atomic numbers 'z' "
                             f"and the positions 'pos' (missing '{key}')")
    pos = data.pos.detach().cpu().to(torch.float64).numpy()
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"'pos' must have shape [N, 3] (got "
                         f"{list(pos.shape)})")
    numbers = data.z.detach().cpu().view(-1).numpy()
    if len(numbers) != len(pos):
        raise ValueError(f"'z' has {len(numbers)} entries but 'pos' has "
                         f"{len(pos)} rows")
    cell, pbc = None, False
    if getattr(data, 'cell', None) is not None:
        cell = data.cell.detach().cpu().to(torch.float64).reshape(-1, 3, 3)
        if cell.size(0) != 1:
            raise ValueError(f"'cell' must hold one cell (got "
                             f"{list(data.cell.shape)})")
        cell = cell[0].numpy()
    if getattr(data, 'pbc', None) is not None:
        pbc = data.pbc.detach().cpu().view(-1).numpy().astype(bool)
    return Atoms(numbers=numbers, positions=pos, cell=cell, pbc=pbc)


def read_molecule(path: Union[str, os.PathLike], index: Union[int, str] = -1,
                  format: Optional[str] = None
                  ) -> Union[Atoms, List[Atoms]]:
    r"""Reads atoms from any file :func:`ase.io.read` can read (XYZ,
    extended XYZ, PDB, CIF, SDF, ...).

    Args:
        path (str or os.PathLike): The file.
        index (int or str, optional): Which structure of a multi-structure
            file, as in :func:`ase.io.read`: an integer for one
            :class:`ase.Atoms` (:obj:`-1`: the last), or a slice string
            such as :obj:`":"` for a list of them. (default: :obj:`-1`)
        format (str, optional): ASE's format name; guessed from the file
            when :obj:`None`. (default: :obj:`None`)

    Raises:
        FileNotFoundError: If :obj:`path` does not exist.
        ValueError: If ASE cannot read it (the message names the file).
    """
    import ase.io

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such molecule file: '{path}'")
    try:
        out = ase.io.read(path, index=index, format=format)
    except Exception as e:  # ASE raises many types for unreadable files
        how = f" as format '{format}'" if format is not None else ''
        raise ValueError(f"ASE cannot read '{path}'{how}: "
                         f"{type(e).__name__}: {e}") from e
    structures = out if isinstance(out, list) else [out]
    if not structures or any(len(atoms) == 0 for atoms in structures):
        raise ValueError(f"'{path}' holds no atoms")
    return out


class LieCalculator(Calculator):
    r"""An ASE calculator for an energy model: the energy is the model's
    output and the forces are :math:`\mathbf{F}_i = -\partial E / \partial
    \mathbf{r}_i`, by automatic differentiation through the model (and, for
    a :class:`~torch_lie.nn.LieTransformer`, through its lift).

    :obj:`model` maps the :class:`~torch_geometric.data.Data` of
    :func:`atoms_to_data` (with :obj:`pos`, :obj:`z` and :obj:`x =
    features(z)` if featurised) to the energy, a tensor with one element,
    differentiable in :obj:`data.pos`: a
    :class:`~torch_lie.nn.LieTransformer` with :obj:`out_channels=1` is
    one. The model must live on :obj:`device` and return eV for positions
    in Å. During a calculation it is put in evaluation mode (dropout off)
    and restored afterwards; gradients are taken only with respect to the
    positions, so the parameters' :obj:`.grad` are left alone.

    Models with random (Monte Carlo) lifts, e.g. over :math:`SE(3)`, give a
    random energy at every call: fine for screening, but molecular dynamics
    then does not conserve energy. Pass :obj:`seed` to draw the same samples
    at every call, which makes the energy a smooth function of the positions
    (the samples are drawn from :obj:`seed` in a forked random state, so
    the caller's random stream is untouched).

    Neighbourhoods are taken in the positions as given: periodic systems
    (:obj:`atoms.pbc` set) are refused, since the lift knows no periodic
    images. With a radius :obj:`r`, atoms entering or leaving a
    neighbourhood make the energy jump: use full attention
    (:obj:`r=None`) for dynamics.

    Args:
        model (torch.nn.Module or callable): The energy model.
        features (callable, optional): Maps atomic numbers :obj:`z [N]` to
            features :obj:`[N, F]`. (default: :obj:`None`)
        dtype (torch.dtype, optional): Floating-point type of the positions
            fed to the model; by default that of the model's parameters
            (:obj:`torch.float32` without any). Use a float64 model
            (:obj:`model.double()`) for tight energy conservation.
            (default: :obj:`None`)
        device (torch.device or str, optional): Device of the model.
            (default: :obj:`"cpu"`)
        seed (int, optional): Fixes the random draws of every calculation
            (see above). (default: :obj:`None`)
        **kwargs: Passed to :class:`ase.calculators.calculator.Calculator`.

    .. code-block:: python

        from ase.build import molecule
        from torch_lie.datasets.qm9 import qm9_features
        from torch_lie.io import LieCalculator
        from torch_lie.nn import LieTransformer
        from torch_lie.transforms import Lift

        model = LieTransformer(15, 32, 1, lift=Lift('T3'), num_layers=2)
        atoms = molecule('CH3CH2OH')
        atoms.calc = LieCalculator(model.double(), features=qm9_features)
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    """
    implemented_properties = ['energy', 'forces']

    def __init__(self, model: Callable,
                 features: Optional[Featuriser] = None,
                 dtype: Optional[torch.dtype] = None,
                 device: Union[torch.device, str] = 'cpu',
                 seed: Optional[int] = None, **kwargs):
        if 'lift' in kwargs:  # ASE would keep it as an unused parameter
            raise TypeError("LieCalculator takes no 'lift': the model owns "
                            "its lift, e.g. LieTransformer(..., lift=Lift("
                            "'SE3', num_samples=4))")
        super().__init__(**kwargs)
        if not callable(model):
            raise TypeError(f"'model' must be callable (got "
                            f"{type(model).__name__})")
        lift = getattr(model, 'lift', None)
        if isinstance(lift, Lift) and lift.group.space_dim != 3:
            raise ValueError(f"The model's lift must act on 3D positions "
                             f"({lift.group} acts on "
                             f"{lift.group.space_dim}D points)")
        if dtype is None:
            params = (list(model.parameters()) if isinstance(
                model, torch.nn.Module) else [])
            floats = [p.dtype for p in params if p.is_floating_point()]
            dtype = floats[0] if floats else torch.float32
        if not dtype.is_floating_point:
            raise ValueError(f"'dtype' must be a floating-point type "
                             f"(got {dtype})")
        self.model = model
        self.features = features
        self.dtype = dtype
        self.device = torch.device(device)
        self.seed = seed

    def energy_and_forces(self, atoms: Atoms) -> tuple:
        r"""Returns the energy (a Python float, eV) and the forces (a
        float64 array :obj:`[N, 3]`, eV/Å) of :obj:`atoms`, without
        caching."""
        if atoms.pbc.any():
            raise NotImplementedError(
                "LieCalculator does not handle periodic boundary conditions: "
                "the lift has no periodic images (set atoms.pbc = False for "
                "a finite cluster)")
        data = atoms_to_data(atoms, self.features, self.dtype).to(self.device)
        pos = data.pos.requires_grad_(True)
        module = self.model if isinstance(self.model,
                                          torch.nn.Module) else None
        training = module.training if module is not None else False
        if self.seed is None:
            rng = contextlib.nullcontext()
        else:
            devices = ([self.device] if self.device.type == 'cuda' else [])
            rng = torch.random.fork_rng(devices=devices)
        try:
            if module is not None:
                module.eval()
            with torch.enable_grad(), rng:
                if self.seed is not None:
                    torch.manual_seed(self.seed)
                energy = self.model(data)
                if not isinstance(energy, Tensor):
                    raise TypeError(f"The model must return a tensor (got "
                                    f"{type(energy).__name__})")
                if energy.numel() != 1:
                    raise ValueError(
                        f"The model must return one energy per structure "
                        f"(got shape {list(energy.shape)})")
                energy = energy.reshape(())
                grad, = torch.autograd.grad(energy, pos, allow_unused=True)
        finally:
            if module is not None:
                module.train(training)
        if grad is None:  # the energy does not depend on the positions
            grad = torch.zeros_like(pos)
        forces = -grad.detach().cpu().to(torch.float64).numpy()
        return float(energy.detach()), forces

    def calculate(self, atoms: Optional[Atoms] = None,
                  properties: Optional[List[str]] = None,
                  system_changes: List[str] = all_changes):
        super().calculate(atoms, properties or ['energy'], system_changes)
        energy, forces = self.energy_and_forces(self.atoms)
        self.results['energy'] = energy
        self.results['free_energy'] = energy
        self.results['forces'] = np.ascontiguousarray(forces)

    def __repr__(self) -> str:
        model = (repr(self.model) if isinstance(self.model, torch.nn.Module)
                 else getattr(self.model, '__name__', type(self.model).__name__))
        return (f'{self.__class__.__name__}({model}, '
                f'dtype={self.dtype}, device={self.device}, seed={self.seed})')
