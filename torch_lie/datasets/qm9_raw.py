r"""QM9 offline: writes the raw files that PyG's own
:class:`torch_geometric.datasets.QM9` reads, from the molecules of the
registry package `qm9pack <https://pypi.org/project/qm9pack/>`_ (all
130,831 characterised molecules of QM9, by the data set's author), so that
``QM9(root)`` loads with no network and PyG's own :meth:`process` builds
:obj:`x`, :obj:`z`, :obj:`pos`, :obj:`edge_index`, :obj:`edge_attr` and
:obj:`y` in its 19-target order and units.

.. code-block:: python

    from torch_geometric.datasets import QM9
    from torch_lie.datasets import prepare_qm9

    prepare_qm9('data/QM9')  # once: pip install 'torch-lie[qm9]'
    dataset = QM9('data/QM9')  # 130,831 molecules, offline

Needs the :obj:`qm9` extra (:obj:`qm9pack`, :obj:`rdkit`, :obj:`pandas`).
"""
import importlib.util
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from torch_lie.utils.checks import check_int

__all__ = ['QM9PACK_COLUMNS', 'read_qm9pack', 'prepare_qm9']

_INSTALL = "pip install 'torch-lie[qm9]'"

#: The columns of :obj:`qm9pack`'s tables that
#: :func:`~torch_lie.datasets.prepare_qm9` reads, in
#: the order of PyG's raw :obj:`gdb9.sdf.csv` for the properties.
QM9PACK_COLUMNS: Tuple[str, ...] = (
    'XYZ_file', 'Index', 'SMILES', 'N_atoms', 'Elements', 'XYZ_Ang',
    'RotA_GHz', 'RotB_GHz', 'RotC_GHz', 'Dipole_debye',
    'Polarizability_bohr3', 'HOMO_au', 'LUMO_au', 'HOMO_LUMO_gap_au',
    'R2_bohr2', 'ZPVE_au', 'InternalEnergy_0K_au', 'InternalEnergy_298K_au',
    'Enthalphy_298K_au', 'GibbsFreeEnergy_298K_au',
    'Heatcapacity_Cv_cal_mol_K')

# PyG's raw files: the rdkit route's three and the pre-processed one.
_SDF, _CSV, _SKIP, _PT = ('gdb9.sdf', 'gdb9.sdf.csv', 'uncharacterized.txt',
                          'qm9_v3.pt')
# Header of PyG's gdb9.sdf.csv; atomisation energies in kcal/mol.
_CSV_HEADER = ('mol_id,A,B,C,mu,alpha,homo,lumo,gap,r2,zpve,u0,u298,h298,'
               'g298,cv,u0_atom,u298_atom,h298_atom,g298_atom')
_ELEMENTS = ('H', 'C', 'N', 'O', 'F')
# qm9pack's tables, in the order of the molecules.
_PARTS = ('qm9_part1.csv', 'qm9_part2.csv', 'qm9_part3.csv')


def _qm9pack_folder() -> str:
    # qm9pack's own get_data() reads these files; importing the package
    # needs pkg_resources, which setuptools >= 81 no longer ships.
    spec = importlib.util.find_spec('qm9pack')
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"QM9 offline needs the package 'qm9pack': "
                          f"{_INSTALL}")
    return os.path.join(list(spec.submodule_search_locations)[0], 'data')


def read_qm9pack(num_molecules: Optional[int] = None,
                 folder: Optional[str] = None):
    r"""The molecules of :obj:`qm9pack` as a pandas :obj:`DataFrame` with
    the columns :data:`~torch_lie.datasets.qm9_raw.QM9PACK_COLUMNS`, in the
    order of their QM9 index
    (:obj:`1` to :obj:`133885`, the 3,054 uncharacterised molecules left
    out).

    Args:
        num_molecules (int, optional): Only the first ones (e.g. for a
            quick trial or a test). (default: all 130,831)
        folder (str, optional): The folder of :obj:`qm9pack`'s CSV files.
            (default: the installed package's)
    """
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(f"QM9 offline needs 'pandas': {_INSTALL}") from None
    if num_molecules is not None:
        num_molecules = check_int('num_molecules', num_molecules)
    folder = _qm9pack_folder() if folder is None else folder
    frames, left = [], num_molecules
    for name in _PARTS:
        if left is not None and left <= 0:
            break
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"qm9pack's file '{path}' is missing: "
                                    f"reinstall it ({_INSTALL})")
        frame = pd.read_csv(path, nrows=left)
        missing = [c for c in QM9PACK_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"'{path}' has no column {', '.join(missing)}: "
                             f"this qm9pack is not the one torch_lie reads "
                             f"(pip install 'qm9pack==1.0.3')")
        frames.append(frame[list(QM9PACK_COLUMNS)])
        left = None if left is None else left - len(frame)
    table = pd.concat(frames, ignore_index=True)
    if num_molecules is not None and len(table) < num_molecules:
        raise ValueError(f"qm9pack holds {len(table)} molecules (asked for "
                         f"{num_molecules})")
    return table


def _numbers(text: str, where: str) -> np.ndarray:
    try:
        return np.array(text.replace('[', '').replace(']', '').split(','),
                        dtype=np.float64)
    except ValueError:
        raise ValueError(f"{where}: 'XYZ_Ang' is not a list of coordinates "
                         f"({text[:40]!r}...)") from None


def _symbols(text: str) -> List[str]:
    return [s.strip().strip('\'"') for s in text.strip('[]').split(',')]


def _molecule(row: Any, Chem, rdDetermineBonds) -> Tuple[Any, int, bool]:
    r"""The molecule of one qm9pack row, its atoms in the row's order; its
    bonds and charges those of its SMILES, placed on the heavy atoms by
    matching them onto the bonds the geometry allows (covalent radii) with
    the hydrogens each atom holds, each hydrogen bonded to its nearest heavy
    atom. Also returns how many close contacts of the geometry are not bonds
    of the SMILES (strained rings), and whether the SMILES fits: where it
    does not, the bonds are those RDKit perceives from the geometry."""
    where = f"qm9pack molecule {row.Index} ({row.XYZ_file})"
    symbols = _symbols(row.Elements)
    pos = _numbers(row.XYZ_Ang, where)
    if len(symbols) != row.N_atoms or pos.size != 3 * row.N_atoms:
        raise ValueError(f"{where}: {row.N_atoms} atoms, but {len(symbols)} "
                         f"elements and {pos.size} coordinates")
    other = sorted(set(symbols) - set(_ELEMENTS))
    if other:
        raise ValueError(f"{where}: element {', '.join(other)} is not in QM9 "
                         f"(H, C, N, O, F)")
    pos = pos.reshape(-1, 3)
    heavy = np.array([i for i, s in enumerate(symbols) if s != 'H'])
    hydrogens = np.array([i for i, s in enumerate(symbols) if s == 'H'],
                         dtype=np.int64)
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    owner = dist[np.ix_(hydrogens, heavy)].argmin(1)  # position in heavy
    held = np.bincount(owner, minlength=len(heavy))
    # RDKit's connectivity rule: within 1.3 times the covalent radii's sum.
    table = Chem.GetPeriodicTable()
    radius = np.array([table.GetRcovalent(s) for s in symbols])
    bonded = (dist[hydrogens, heavy[owner]] <=
              1.3 * (radius[hydrogens] + radius[heavy[owner]])).all()
    geometry = _xyz_molecule([symbols[i] for i in heavy], pos[heavy], Chem)
    rdDetermineBonds.DetermineConnectivity(geometry)  # from the distances

    template = Chem.MolFromSmiles(row.SMILES)
    if template is None:
        raise ValueError(f"{where}: RDKit cannot read its SMILES "
                         f"{row.SMILES!r}")
    Chem.Kekulize(template, clearAromaticFlags=True)
    query = Chem.RWMol(template)
    for bond in query.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
    for atom in query.GetAtoms():
        atom.SetFormalCharge(0)
    needed = np.array([a.GetTotalNumHs() for a in template.GetAtoms()])
    begin, end = np.array([[b.GetBeginAtomIdx(), b.GetEndAtomIdx()]
                           for b in template.GetBonds()],
                          dtype=np.int64).reshape(-1, 2).T
    matches = np.array(geometry.GetSubstructMatches(
        query.GetMol(), uniquify=False, maxMatches=100_000),
        dtype=np.int64).reshape(-1, len(heavy))
    matches = matches[(held[matches] == needed).all(1)]
    extra = geometry.GetNumBonds() - template.GetNumBonds()
    if len(matches) == 0 or len(hydrogens) != needed.sum() or not bonded:
        return _perceived(symbols, pos, where, Chem, rdDetermineBonds), \
            extra, False
    # The match with the shortest bonds: not the close contacts.
    length = dist[heavy[matches[:, begin]], heavy[matches[:, end]]].sum(1)
    match = heavy[matches[length.argmin()]]

    mol = Chem.RWMol()
    for symbol in symbols:
        mol.AddAtom(Chem.Atom(symbol))
    for atom in template.GetAtoms():
        mol.GetAtomWithIdx(int(match[atom.GetIdx()])).SetFormalCharge(
            atom.GetFormalCharge())
    for bond in template.GetBonds():
        mol.AddBond(int(match[bond.GetBeginAtomIdx()]),
                    int(match[bond.GetEndAtomIdx()]), bond.GetBondType())
    for h, atom in zip(hydrogens.tolist(), heavy[owner].tolist()):
        mol.AddBond(h, atom, Chem.BondType.SINGLE)
    conformer = Chem.Conformer(len(symbols))
    for i, xyz in enumerate(pos.tolist()):
        conformer.SetAtomPosition(i, xyz)
    mol.AddConformer(conformer)
    mol = mol.GetMol()
    Chem.SanitizeMol(mol)
    return mol, extra, True


def _xyz_molecule(symbols: Sequence[str], pos: np.ndarray, Chem):
    r"""Atoms without bonds, read by RDKit from an XYZ block (its reader
    takes no exponents: fixed-point coordinates)."""
    return Chem.MolFromXYZBlock(f'{len(symbols)}\n\n' + '\n'.join(
        '{} {:.10f} {:.10f} {:.10f}'.format(s, *xyz)
        for s, xyz in zip(symbols, pos.tolist())))


def _perceived(symbols: Sequence[str], pos: np.ndarray, where: str, Chem,
               rdDetermineBonds):
    r"""The molecule with the bonds and charges that RDKit perceives from
    its geometry alone (xyz2mol, neutral)."""
    mol = _xyz_molecule(symbols, pos, Chem)
    try:
        rdDetermineBonds.DetermineBonds(mol, charge=0)
    except ValueError as error:
        raise ValueError(f"{where}: its SMILES does not fit its geometry, "
                         f"and RDKit perceives no bonds from the geometry "
                         f"({error})") from None
    return mol


def _csv_line(row: Any, symbols: Sequence[str]) -> str:
    from torch_geometric.datasets.qm9 import HAR2EV, KCALMOL2EV, atomrefs

    values = [row.RotA_GHz, row.RotB_GHz, row.RotC_GHz, row.Dipole_debye,
              row.Polarizability_bohr3, row.HOMO_au, row.LUMO_au,
              row.HOMO_LUMO_gap_au, row.R2_bohr2, row.ZPVE_au]
    totals = [row.InternalEnergy_0K_au, row.InternalEnergy_298K_au,
              row.Enthalphy_298K_au, row.GibbsFreeEnergy_298K_au]
    counts = [symbols.count(s) for s in _ELEMENTS]
    # Atomisation energies: the totals minus PyG's own atom references (eV),
    # in the kcal/mol that PyG converts back.
    atomisation = [(total * HAR2EV - float(np.dot(counts, atomrefs[column])))
                   / KCALMOL2EV for column, total in zip(range(7, 11), totals)]
    numbers = values + totals + [row.Heatcapacity_Cv_cal_mol_K] + atomisation
    return f'gdb_{row.Index},' + ','.join(repr(float(v)) for v in numbers)


def _check_raw(raw_dir: str) -> int:
    r"""The number of molecules of a raw folder of the rdkit route; raises
    naming the file when one is truncated (the counts disagree)."""
    with open(os.path.join(raw_dir, _CSV)) as f:
        rows = f.read().split('\n')[1:-1]
    with open(os.path.join(raw_dir, _SDF)) as f:
        molecules = sum(1 for line in f if line.startswith('$$$$'))
    if len(rows) != molecules or not rows:
        raise ValueError(f"'{raw_dir}' is incomplete: '{_CSV}' holds "
                         f"{len(rows)} molecules and '{_SDF}' {molecules}: "
                         f"write it anew with prepare_qm9(root, "
                         f"overwrite=True)")
    return molecules


def _has_rdkit() -> bool:  # as PyG's QM9 decides which files it reads
    try:
        import rdkit  # noqa: F401
    except ImportError:
        return False
    return True


def prepare_qm9(root: Union[str, os.PathLike],
                num_molecules: Optional[int] = None, overwrite: bool = False,
                table=None, progress: bool = True) -> Dict[str, Any]:
    r"""Writes QM9 into :obj:`root/raw` from :obj:`qm9pack`, offline, as
    the files PyG's :class:`~torch_geometric.datasets.QM9` reads with RDKit
    (:obj:`gdb9.sdf`, :obj:`gdb9.sdf.csv`, :obj:`uncharacterized.txt`),
    processes them once with PyG's own
    :meth:`~torch_geometric.datasets.QM9.process`, and saves its molecules
    as :obj:`qm9_v3.pt`, the file PyG reads without RDKit: :obj:`QM9(root)`
    then loads the same data with or without RDKit. A folder that already
    holds the files PyG reads is checked (a truncated file is an error) and
    kept: a download of PyG's works too.

    The molecules keep qm9pack's order (that of PyG's download), their atoms
    the order and B3LYP coordinates of the QM9 files; they are named
    :obj:`gdb_<index>` and :obj:`idx` counts them from zero. Bonds and
    formal charges are those of each molecule's SMILES, placed by matching
    its heavy atoms onto the bonds the geometry allows (RDKit's connectivity
    from covalent radii; where a strained ring brings two atoms as close as
    a bond, the match with the shortest bonds) with the hydrogens each atom
    holds (each bonded to its nearest heavy atom). A molecule whose SMILES
    does not fit its geometry (2 of QM9: a bond of the SMILES broke in the
    B3LYP relaxation) keeps the bonds RDKit perceives from its geometry
    (xyz2mol) and is listed, with both SMILES, in
    :obj:`raw/qm9_mismatches.csv` and in the summary. The targets are
    qm9pack's values in PyG's raw units, the atomisation energies (PyG's
    columns 12-15) the totals minus PyG's own atom reference energies. Each
    file is written under a temporary name and renamed when complete.

    Args:
        root (str or os.PathLike): The data set's root, as for
            :obj:`QM9(root)`.
        num_molecules (int, optional): Only the first molecules (a quick
            trial or a test). (default: all)
        overwrite (bool, optional): Replace raw files already there.
            (default: :obj:`False`)
        table (pandas DataFrame, optional): Molecules in qm9pack's columns
            (:func:`read_qm9pack`) to write instead of qm9pack's.
            (default: :obj:`None`)
        progress (bool, optional): Show a progress bar. (default:
            :obj:`True`)

    Returns:
        The summary, a dict of :obj:`num_molecules` (written, or found),
        :obj:`mismatches` (the QM9 index, SMILES and geometry's SMILES of
        each molecule whose SMILES did not fit), :obj:`strained` (how many
        molecules have close contacts that are not bonds) and
        :obj:`written` (whether anything was).
    """
    raw_dir = os.path.join(os.fspath(root), 'raw')
    routes = (_SDF, _CSV, _SKIP) if _has_rdkit() else (_PT, )
    if not overwrite and all(os.path.isfile(os.path.join(raw_dir, n))
                             for n in routes):
        count = _check_raw(raw_dir) if len(routes) > 1 else None
        return dict(num_molecules=count, mismatches=[], strained=None,
                    written=False)
    if not _has_rdkit():
        raise ImportError(f"Writing QM9 offline needs 'rdkit': {_INSTALL}")
    from rdkit import Chem
    present = [n for n in (_SDF, _CSV, _SKIP, _PT)
               if os.path.exists(os.path.join(raw_dir, n))]
    if present and not overwrite:
        raise FileExistsError(f"'{raw_dir}' holds {', '.join(present)} but "
                              f"not all of {', '.join(routes)}: pass "
                              f"overwrite=True to write QM9 there anew")
    if table is None:
        table = read_qm9pack(num_molecules)
    elif num_molecules is not None:
        table = table.iloc[:num_molecules]
    missing = [c for c in QM9PACK_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"the molecules' table has no column "
                         f"{', '.join(missing)} (see QM9PACK_COLUMNS)")
    if len(table) == 0:
        raise ValueError('no molecules to write')
    summary = _write_raw(raw_dir, table, Chem, progress)
    processed = os.path.join(os.fspath(root), 'processed')
    if os.path.isdir(processed):  # built from the files replaced here
        shutil.rmtree(processed)
    _save_preprocessed(root)
    return summary


def _write_raw(raw_dir: str, table, Chem, progress: bool) -> Dict[str, Any]:
    from rdkit import RDLogger
    from rdkit.Chem import rdDetermineBonds
    from tqdm import tqdm

    from torch_lie.utils.atomic import atomic_file

    os.makedirs(raw_dir, exist_ok=True)
    if os.path.exists(os.path.join(raw_dir, _PT)):  # would not match
        os.remove(os.path.join(raw_dir, _PT))
    RDLogger.DisableLog('rdApp.*')
    mismatches, strained, lines = [], 0, [_CSV_HEADER]
    rows = tqdm(table.itertuples(index=False), total=len(table),
                desc='QM9 from qm9pack', disable=not progress)
    # V3000 blocks: coordinates to 1e-6 Å (V2000 rounds them to 1e-4). The
    # SDF is renamed into place last: a folder without it is incomplete.
    with atomic_file(os.path.join(raw_dir, _SDF), 'w') as sdf:
        for row in rows:
            mol, extra, fits = _molecule(row, Chem, rdDetermineBonds)
            if not fits:
                mismatches.append((int(row.Index), row.SMILES, Chem.MolToSmiles(
                    Chem.RemoveHs(mol), isomericSmiles=False)))
            strained += fits and extra > 0
            mol.SetProp('_Name', f'gdb_{row.Index}')
            sdf.write(Chem.MolToV3KMolBlock(mol) + '$$$$\n')
            lines.append(_csv_line(row, _symbols(row.Elements)))
        with atomic_file(os.path.join(raw_dir, _CSV), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        with atomic_file(os.path.join(raw_dir, 'qm9_mismatches.csv'),
                         'w') as f:
            f.write('index,smiles,geometry_smiles\n' + ''.join(
                ','.join(map(str, m)) + '\n' for m in mismatches))
        with atomic_file(os.path.join(raw_dir, _SKIP), 'w') as f:
            # PyG skips the molecules listed between 9 header lines and 2
            # footer lines; qm9pack holds none of the uncharacterised ones.
            f.write('\n'.join(
                ['Written by torch_lie.datasets.prepare_qm9 from qm9pack,',
                 'which holds only the characterised molecules of QM9:',
                 'nothing to skip.'] + [''] * 6 + ['(end)', '']))
    return dict(num_molecules=len(lines) - 1, mismatches=mismatches,
                strained=strained, written=True)


def _save_preprocessed(root: Union[str, os.PathLike]) -> None:
    r"""Processes the rdkit route's files with PyG's own code and saves its
    molecules as :obj:`raw/qm9_v3.pt`, the file PyG reads without RDKit."""
    from torch_geometric.datasets import QM9

    from torch_lie.utils.atomic import atomic_save

    dataset = QM9(os.fspath(root))
    records = [dataset[i].to_dict() for i in range(len(dataset))]
    atomic_save(records, os.path.join(os.fspath(root), 'raw', _PT))
