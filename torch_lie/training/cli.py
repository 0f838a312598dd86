import argparse
import os
import sys
from typing import Any, Callable, Sequence


def check_counts(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 names: Sequence[str]) -> None:
    r"""Exits with a usage error of :obj:`parser` unless the arguments
    :obj:`names` of :obj:`args` are at least one."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")


def check_out(parser: argparse.ArgumentParser, path: str,
              flag: str = '--out') -> None:
    r"""Exits with a usage error of :obj:`parser` unless :obj:`path` can be
    a folder the run writes into: not a file, and in a writable place (its
    nearest existing folder), checked before any work."""
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        parser.error(f"{flag} '{path}' is a file: give a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        parser.error(f"{flag} '{path}' cannot be written ('{existing}' is "
                     f"not a writable folder)")


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
