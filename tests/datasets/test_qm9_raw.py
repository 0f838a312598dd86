r"""QM9 offline: real qm9pack rows written by :func:`prepare_qm9` and read
by PyG's own :class:`~torch_geometric.datasets.QM9`, with and without
RDKit; the values checked against qm9pack's own; bad input refused by
name, nothing half-written. The whole of QM9 (130,831 molecules) is checked
by the slow test at the end (``TORCH_LIE_SLOW=1``)."""
import os
import shutil
import sys

import numpy as np
import pytest
import torch
from torch_geometric.datasets import QM9
from torch_geometric.datasets.qm9 import HAR2EV, atomrefs

from torch_lie.datasets import QM9PACK_COLUMNS, prepare_qm9, read_qm9pack
from torch_lie.datasets.qm9_raw import _numbers, _symbols

ELEMENTS = ('H', 'C', 'N', 'O', 'F')
NUMBERS = dict(H=1, C=6, N=7, O=8, F=9)
# qm9pack's columns in PyG's order of y[:, 0..11] and y[:, 16..18], with
# PyG's factor to its units.
COLUMNS = [('Dipole_debye', 1), ('Polarizability_bohr3', 1),
           ('HOMO_au', HAR2EV), ('LUMO_au', HAR2EV),
           ('HOMO_LUMO_gap_au', HAR2EV), ('R2_bohr2', 1),
           ('ZPVE_au', HAR2EV), ('InternalEnergy_0K_au', HAR2EV),
           ('InternalEnergy_298K_au', HAR2EV), ('Enthalphy_298K_au', HAR2EV),
           ('GibbsFreeEnergy_298K_au', HAR2EV),
           ('Heatcapacity_Cv_cal_mol_K', 1)]
ROTATIONS = ['RotA_GHz', 'RotB_GHz', 'RotC_GHz']


def sample(table):
    r"""The first 5 molecules and every 5,000th: all sizes and elements, a
    few strained rings."""
    return table.iloc[list(range(5)) + list(range(5000, len(table), 5000))]


@pytest.fixture(scope='module')
def written(qm9_table, tmp_path_factory):
    root = tmp_path_factory.mktemp('QM9')
    rows = sample(qm9_table)
    summary = prepare_qm9(root, table=rows, progress=False)
    return root, rows, summary


def same_molecule(a: str, b: str) -> bool:
    from rdkit import Chem

    def canonical(smiles):
        return Chem.MolToSmiles(Chem.MolFromSmiles(smiles),
                                isomericSmiles=False)
    return canonical(a) == canonical(b)


def expected_y(row) -> np.ndarray:
    r"""PyG's 19 targets of a qm9pack row, in float64: its columns with
    PyG's factors, the atomisation energies from PyG's atom references."""
    y = [getattr(row, name) * factor for name, factor in COLUMNS]
    counts = [_symbols(row.Elements).count(e) for e in ELEMENTS]
    y += [y[column] - float(np.dot(counts, atomrefs[column]))
          for column in range(7, 11)]
    return np.array(y + [getattr(row, name) for name in ROTATIONS])


def test_pyg_reads_real_molecules(written):
    root, rows, summary = written
    assert summary == dict(num_molecules=len(rows), mismatches=[],
                           strained=summary['strained'], written=True)
    dataset = QM9(str(root))
    assert len(dataset) == len(rows)
    assert {f.name for f in (root / 'raw').iterdir()} == {
        'gdb9.sdf', 'gdb9.sdf.csv', 'uncharacterized.txt', 'qm9_v3.pt',
        'qm9_mismatches.csv'}
    for i, row in enumerate(rows.itertuples(index=False)):
        data = dataset[i]
        symbols = _symbols(row.Elements)
        assert data.z.tolist() == [NUMBERS[s] for s in symbols]
        assert torch.allclose(data.pos.double(), torch.from_numpy(
            _numbers(row.XYZ_Ang, '').reshape(-1, 3)), atol=1e-6, rtol=0)
        assert data.name == f'gdb_{row.Index}' and data.idx == i
        assert same_molecule(data.smiles, row.SMILES)
        # PyG's y is float32: up to 1e-7 of the value (1 meV on 1e4 eV).
        y = torch.from_numpy(expected_y(row))
        assert torch.allclose(data.y[0].double(), y, rtol=2e-7, atol=1e-6)
        # The atomisation energies are the totals minus PyG's atomref sums.
        for column in range(7, 11):
            ref = dataset.atomref(column).view(-1).double()[data.z].sum()
            total = float(data.y[0, column])
            assert abs(float(data.y[0, column + 5]) - (total - ref)) < \
                2e-7 * abs(total) + 1e-4
        # The bonds: symmetric, each hydrogen bonded once, the heavy atoms'
        # hydrogen counts (PyG's x[:, 10]) those of the SMILES.
        src, dst = data.edge_index
        assert torch.equal(torch.sort(src * 100 + dst).values,
                           torch.sort(dst * 100 + src).values)
        hydrogen = data.z == 1
        assert torch.bincount(src[hydrogen[src]], minlength=data.num_nodes
                              )[hydrogen].eq(1).all()
        assert data.x[:, 5].long().tolist() == data.z.tolist()
    # Molecule 1 is methane, HOMO -0.3877 Ha.
    assert rows.iloc[0].SMILES == 'C'
    assert abs(float(dataset[0].y[0, 2]) - (-10.550)) < 5e-4


def test_same_data_without_rdkit(written, tmp_path, monkeypatch):
    r"""PyG without RDKit reads raw/qm9_v3.pt: the same molecules."""
    root, rows, _ = written
    with_rdkit = QM9(str(root))
    (tmp_path / 'raw').mkdir()
    shutil.copy(root / 'raw' / 'qm9_v3.pt', tmp_path / 'raw')
    monkeypatch.setitem(sys.modules, 'rdkit', None)  # import rdkit fails
    assert prepare_qm9(tmp_path)['written'] is False  # nothing to do
    without = QM9(str(tmp_path))
    assert len(without) == len(with_rdkit) == len(rows)
    for a, b in zip(with_rdkit, without):
        for key in ('x', 'z', 'pos', 'edge_index', 'edge_attr', 'y'):
            assert torch.equal(a[key], b[key]), key
        assert (a.name, a.idx, a.smiles) == (b.name, b.idx, b.smiles)
    # Without RDKit and without files, the error names the extra.
    with pytest.raises(ImportError, match=r"torch-lie\[qm9\]"):
        prepare_qm9(tmp_path / 'empty')


def test_kept_checked_and_never_half_written(written, qm9_table, tmp_path):
    root, rows, _ = written
    again = prepare_qm9(root, progress=False)  # complete: checked and kept
    assert again['written'] is False and again['num_molecules'] == len(rows)

    copy = tmp_path / 'copy'
    shutil.copytree(root / 'raw', copy / 'raw')
    sdf = copy / 'raw' / 'gdb9.sdf'
    text = sdf.read_text()
    sdf.write_text(text[:len(text) // 2])  # truncated
    with pytest.raises(ValueError, match=r"gdb9\.sdf.*overwrite=True"):
        prepare_qm9(copy)
    sdf.unlink()  # incomplete: the other files are not replaced unasked
    with pytest.raises(FileExistsError, match='overwrite=True'):
        prepare_qm9(copy)
    summary = prepare_qm9(copy, table=qm9_table.iloc[:3], overwrite=True,
                          progress=False)
    assert summary['num_molecules'] == 3 and len(QM9(str(copy))) == 3

    # A bad molecule at the end: the error names it, nothing is left.
    bad = qm9_table.iloc[:4].copy()
    bad.loc[bad.index[3], 'Elements'] = "['Cl','H','H','H']"
    with pytest.raises(ValueError, match=r"molecule 4 .*Cl.*H, C, N, O, F"):
        prepare_qm9(tmp_path / 'bad', table=bad)
    assert not list((tmp_path / 'bad').rglob('*.*'))  # no file, no .tmp


def test_smiles_that_do_not_fit_are_reported(qm9_table, tmp_path):
    r"""A molecule whose SMILES does not fit its geometry keeps the bonds of
    its geometry, and is listed."""
    rows = qm9_table.iloc[:16].copy()
    assert list(rows.SMILES.iloc[13:15]) == ['CCO', 'COC']
    rows.loc[rows.index[13], 'SMILES'] = 'COC'  # ethanol's geometry
    rows.loc[rows.index[6], 'SMILES'] = 'C=C'  # ethane: H count differs
    summary = prepare_qm9(tmp_path, table=rows, progress=False)
    assert summary['mismatches'] == [(7, 'C=C', 'CC'), (14, 'COC', 'CCO')]
    assert summary['num_molecules'] == 16
    assert (tmp_path / 'raw' / 'qm9_mismatches.csv').read_text() == \
        'index,smiles,geometry_smiles\n7,C=C,CC\n14,COC,CCO\n'
    dataset = QM9(str(tmp_path))
    assert same_molecule(dataset[13].smiles, 'CCO')
    assert same_molecule(dataset[6].smiles, 'CC')
    # Atoms far apart: listed, with the geometry's fragments.
    far = qm9_table.iloc[:1].copy()
    far.loc[far.index[0], 'XYZ_Ang'] = '[[0,0,0],[0,0,3],[0,3,0],[3,0,0],' \
        '[5,5,5]]'
    summary = prepare_qm9(tmp_path / 'far', table=far, progress=False)
    assert summary['mismatches'] == [(1, 'C', '[C-4].[H+].[H+].[H+].[H+]')]
    # No bonds to perceive (H3O, neutral): refused by name.
    bad = qm9_table.iloc[2:3].copy()  # water
    bad.loc[bad.index[0], ['N_atoms', 'Elements', 'XYZ_Ang']] = [
        4, "['O','H','H','H']", '[[0,0,0],[0.96,0,0],[0,0.96,0],[0,0,0.96]]']
    with pytest.raises(ValueError, match='molecule 3 .*perceives no bonds'):
        prepare_qm9(tmp_path / 'bad', table=bad)


def test_bad_tables(qm9_table, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match='HOMO_au'):
        prepare_qm9(tmp_path, table=qm9_table.iloc[:3].drop(
            columns='HOMO_au'))
    # A qm9pack of another version: the file and the column are named.
    folder = tmp_path / 'qm9pack'
    folder.mkdir()
    qm9_table.iloc[:3].drop(columns='SMILES').to_csv(
        folder / 'qm9_part1.csv', index=False)
    with pytest.raises(ValueError, match=r"qm9_part1\.csv.*SMILES"):
        read_qm9pack(folder=str(folder))
    (folder / 'qm9_part1.csv').unlink()
    with pytest.raises(FileNotFoundError, match=r"qm9_part1\.csv"):
        read_qm9pack(folder=str(folder))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match='num_molecules'):
            read_qm9pack(bad)
    assert list(read_qm9pack(2).columns) == list(QM9PACK_COLUMNS)
    assert read_qm9pack(2).Index.tolist() == [1, 2]
    # No qm9pack: the error names the extra.
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None
                        if name == 'qm9pack' else find_spec(name, *a))
    with pytest.raises(ImportError, match=r"qm9pack.*torch-lie\[qm9\]"):
        prepare_qm9(tmp_path / 'none')


@pytest.mark.skipif(not os.environ.get('TORCH_LIE_SLOW'),
                    reason='all of QM9 (a few minutes): TORCH_LIE_SLOW=1')
def test_all_of_qm9(qm9_table, tmp_path):
    summary = prepare_qm9(tmp_path, progress=False)
    dataset = QM9(str(tmp_path))
    assert len(qm9_table) == 130_831
    # Two GDB SMILES whose bond broke in the B3LYP relaxation.
    assert [m[0] for m in summary['mismatches']] == [133857, 133859]
    assert len(dataset) == summary['num_molecules'] == 130_831
    # Atom and element counts equal qm9pack's.
    counts = torch.bincount(dataset._data.z, minlength=10)[[1, 6, 7, 8, 9]]
    expected = np.sum([[_symbols(e).count(s) for s in ELEMENTS]
                       for e in qm9_table.Elements], axis=0)
    assert counts.tolist() == expected.tolist()
    assert torch.equal(dataset.slices['z'].diff(),
                       torch.tensor(qm9_table.N_atoms.to_numpy()))
    homo = dataset._data.y[:, 2].double()
    assert torch.allclose(homo, torch.tensor(
        qm9_table.HOMO_au.to_numpy() * HAR2EV), rtol=1e-6, atol=1e-6)
    assert abs(float(homo.mean()) + 6.536) < 1e-3
    assert abs(float(homo.std()) - 0.598) < 1e-3
