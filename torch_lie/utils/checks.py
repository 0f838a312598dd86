from typing import Any


def check_positive_int(name: str, value: Any) -> int:
    r"""Returns :obj:`value` if it is a positive :obj:`int` (not a
    :obj:`bool` or a float such as :obj:`2.0`), and raises a
    :class:`ValueError` naming :obj:`name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"'{name}' must be a positive integer "
                         f"(got {value!r})")
    return value
