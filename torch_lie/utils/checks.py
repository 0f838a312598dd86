from typing import Any, Iterable


def check_positive_int(name: str, value: Any) -> int:
    r"""Returns :obj:`value` if it is a positive :obj:`int` (not a
    :obj:`bool` or a float such as :obj:`2.0`), and raises a
    :class:`ValueError` naming :obj:`name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"'{name}' must be a positive integer "
                         f"(got {value!r})")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    r"""Returns :obj:`value` if it is one of :obj:`choices`, and raises a
    :class:`ValueError` naming :obj:`name` and the choices otherwise."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"'{name}' must be one of {choices} (got {value!r})")
    return value
