import re
from typing import Optional

from torch_lie.groups.group import Group
from torch_lie.groups.se2 import SE2
from torch_lie.groups.se3 import SE3
from torch_lie.groups.so2 import SO2
from torch_lie.groups.so3 import SO3
from torch_lie.groups.translation import T, Trivial


def group_resolver(query: str | Group,
                   space_dim: Optional[int] = None) -> Group:
    r"""Returns the group named by :obj:`query`, so that scripts can switch
    groups with one string: :obj:`"T2"`, :obj:`"T3"`, :obj:`"SO2"`,
    :obj:`"SE2"`, :obj:`"SE2-C4"` (:math:`T(2) \rtimes C_4`), :obj:`"SO3"`,
    :obj:`"SE3"`, :obj:`"Trivial2"`, :obj:`"Trivial3"`, optionally with the
    suffix :obj:`"-matrix"` for the continuous pair embedding (e.g.
    :obj:`"SE3-matrix"`) or :obj:`"-canonical"` for the original
    implementation's :math:`T(2) \rtimes C_k` embedding (e.g.
    :obj:`"SE2-C2-canonical"`) or :obj:`"-quaternion"` for
    :math:`SE(3)`'s quaternion embedding (:obj:`"SE3-quaternion"`). A
    :class:`Group` is returned as it is.

    Args:
        query (str or Group): The group or its name.
        space_dim (int, optional): If given, a :class:`ValueError` is raised
            unless the group acts on :math:`\mathbb{R}^{space\_dim}` (the
            space of the data). (default: :obj:`None`)
    """
    group = _resolve(query)
    if space_dim is not None and group.space_dim != space_dim:
        raise ValueError(f"'{query}' acts on R^{group.space_dim}, but the "
                         f"points are in R^{space_dim}")
    return group


def _resolve(query: str | Group) -> Group:
    if isinstance(query, Group):
        return query
    if not isinstance(query, str):
        raise ValueError(f"'group' must be a Group or a group name such as "
                         f"'T2', 'SO3', 'SE2-C4' or 'SE3-matrix' (got "
                         f"{query!r})")
    m = re.fullmatch(r'(T|Trivial|SO|SE)\(?(\d)\)?(?:[-_]C(\d+))?'
                     r'(?:-(matrix|canonical|quaternion))?', query.strip(),
                     flags=re.IGNORECASE)
    if m is None:
        raise ValueError(f"Unknown group '{query}' (expected e.g. 'T2', "
                         f"'SO3', 'SE2', 'SE2-C4', 'SE3-matrix')")
    name, n, k = m.group(1).upper(), int(m.group(2)), m.group(3)
    embedding = (m[4] or 'log').lower()
    if embedding != 'log' and name in ('T', 'TRIVIAL'):
        raise ValueError(f"'{query}': translations have no {embedding} "
                         f"embedding")
    if k is not None and (name, n) != ('SE', 2):
        raise ValueError(f"'{query}': only SE2 has a discrete subgroup C_k")
    if name == 'T':
        return T(n)
    if name == 'TRIVIAL':
        return Trivial(n)
    groups = {('SO', 2): SO2, ('SO', 3): SO3, ('SE', 2): SE2, ('SE', 3): SE3}
    if (name, n) not in groups:
        raise ValueError(f"Unknown group '{query}': {name}({n}) is not "
                         f"implemented")
    if (name, n) == ('SE', 2):
        return SE2(None if k is None else int(k), embedding=embedding)
    return groups[(name, n)](embedding=embedding)
