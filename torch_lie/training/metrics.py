import json
import os
from typing import Any, Dict, List, Sequence

from torch_lie.utils.atomic import atomic_file


def save_json(obj: Any, path: str) -> None:
    r"""Writes :obj:`obj` as indented JSON to :obj:`path`, atomically (a
    reader sees the old file or the new one)."""
    with atomic_file(path, 'w') as f:
        json.dump(obj, f, indent=1)


def markdown_table(header: Sequence[str],
                   rows: Sequence[Sequence[Any]]) -> str:
    r"""A Markdown table of :obj:`rows` (cells formatted with :obj:`str`)
    under :obj:`header`."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f'a row has {len(row)} cells for '
                             f'{len(header)} columns: {list(row)}')
    lines: List[str] = ['| ' + ' | '.join(header) + ' |',
                        '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def load_runs(directories: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    r"""The :obj:`metrics.json` of each finished run in :obj:`directories`,
    by folder."""
    runs = {}
    for directory in directories:
        path = os.path.join(directory, 'metrics.json')
        if not os.path.exists(path):
            raise FileNotFoundError(f"'{directory}' has no metrics.json: pass "
                                    f"the folders of finished runs")
        with open(path) as f:
            runs[directory] = json.load(f)
    return runs
