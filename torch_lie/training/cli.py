import argparse
import sys
from typing import Any, Callable, Sequence


def check_counts(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 names: Sequence[str]) -> None:
    r"""Exits with a usage error of :obj:`parser` unless the arguments
    :obj:`names` of :obj:`args` are at least one."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")


def exit_on_error(main: Callable[[], Any]) -> None:
    r"""Runs a script's :obj:`main`, ending it with ``error: <message>`` and
    exit status 1 instead of a traceback on the errors whose messages name
    the fix (:class:`ValueError`, :class:`FileNotFoundError`,
    :class:`FileExistsError`, :class:`ImportError`)."""
    try:
        main()
    except (ValueError, FileNotFoundError, FileExistsError,
            ImportError) as error:
        sys.exit(f'error: {error}')
