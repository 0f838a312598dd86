r"""group_resolver, repr, equality and hashing of groups."""
import pytest
from _groups_util import GROUPS, ids

import torch_lie.groups as groups
from torch_lie.groups import SE2, SE3, SO2, SO3, T, Trivial, group_resolver

RESOLVED = {
    'T2': T(2),
    'T3': T(3),
    'SO2': SO2(),
    'SE2': SE2(),
    'SE2-C4': SE2(num_rotations=4),
    'SE2-C6': SE2(num_rotations=6),
    'SO3': SO3(),
    'SE3': SE3(),
    'SE3-matrix': SE3(embedding='matrix'),
    'SO3-matrix': SO3(embedding='matrix'),
    'SO2-matrix': SO2(embedding='matrix'),
    'SE2-C4-matrix': SE2(num_rotations=4, embedding='matrix'),
    'Trivial2': Trivial(2),
    'Trivial3': Trivial(3),
    # Spelling variants.
    'se3': SE3(),
    ' SE(3) ': SE3(),
    'T(2)': T(2),
    'SE2_C4': SE2(num_rotations=4),
    'trivial3': Trivial(3),
}


@pytest.mark.parametrize('query', list(RESOLVED))
def test_resolver(query):
    G = group_resolver(query)
    expected = RESOLVED[query]
    assert type(G) is type(expected)
    assert G == expected and repr(G) == repr(expected)


@pytest.mark.parametrize('G', GROUPS, ids=ids)
def test_resolver_passes_groups_through(G):
    assert group_resolver(G) is G


@pytest.mark.parametrize('query', [
    'SO4', 'SE4', 'SO1', 'T', 'foo', '', 'SO3-quaternion', 'T2-matrix',
    'Trivial3-matrix', 'SO3-C4', 'SE3-C2', 'T12', 'E3', 'SE2-C0', 'T0'
])
def test_resolver_unknown(query):
    with pytest.raises(ValueError) as info:
        group_resolver(query)
    assert str(info.value)  # a message, naming the problem


@pytest.mark.parametrize('query', [None, 3, 2.0, ['SE3']])
def test_resolver_refuses_non_names(query):
    with pytest.raises(ValueError, match="'group' must be a Group or a group "
                                         "name"):
        group_resolver(query)


def test_resolver_messages():
    with pytest.raises(ValueError, match="Unknown group 'foo'"):
        group_resolver('foo')
    with pytest.raises(ValueError, match=r'SO\(4\) is not implemented'):
        group_resolver('SO4')
    with pytest.raises(ValueError, match='no matrix embedding'):
        group_resolver('T3-matrix')
    with pytest.raises(ValueError, match='only SE2 has a discrete subgroup'):
        group_resolver('SO3-C4')
    with pytest.raises(ValueError, match=r"'SE3' acts on R\^3, but the "
                       r"points are in R\^2"):
        group_resolver('SE3', space_dim=2)
    assert group_resolver('SE2-C4', space_dim=2) == SE2(num_rotations=4)
    assert group_resolver(T(3), space_dim=3) == T(3)


REPRS = {
    'T(2)': T(2),
    'T(3)': T(3),
    'Trivial(3)': Trivial(3),
    'SO2()': SO2(),
    'SE2()': SE2(),
    'SE2(num_rotations=4)': SE2(num_rotations=4),
    "SE2(num_rotations=4, embedding='matrix')":
    SE2(num_rotations=4, embedding='matrix'),
    'SO3()': SO3(),
    'SE3()': SE3(),
    "SO3(embedding='matrix')": SO3(embedding='matrix'),
    "SE3(embedding='matrix')": SE3(embedding='matrix'),
    "SE2(embedding='matrix')": SE2(embedding='matrix'),
}


@pytest.mark.parametrize('text', list(REPRS))
def test_repr_roundtrip(text):
    G = REPRS[text]
    assert repr(G) == text
    # The repr is valid Python that rebuilds an equal group.
    rebuilt = eval(text, {k: getattr(groups, k) for k in groups.__all__})
    assert rebuilt == G and hash(rebuilt) == hash(G)


def test_eq_hash():
    assert SE3() == SE3() and hash(SE3()) == hash(SE3())
    assert SE2() != SE2(num_rotations=4)
    assert SE2(num_rotations=4) != SE2(num_rotations=6)
    assert SE2(num_rotations=4) == SE2(num_rotations=4)
    assert SE3() != SE3(embedding='matrix')
    assert SO3() != SE3() and SO2() != SE2()
    assert T(2) != T(3)
    assert T(3) != Trivial(3)  # same interface, different pair embedding
    assert SE3() != 'SE3()' and SE3() is not None
    # Usable as dict keys / in sets, deduplicated by value.
    assert len({SE3(), SE3(), SE2(), SE2(num_rotations=4), T(3),
                Trivial(3)}) == 5
    assert len(set(GROUPS)) == len(GROUPS)
    assert {SO3(): 1}[SO3()] == 1
