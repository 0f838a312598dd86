import json
import os

import pytest

from torch_lie.training import markdown_table, save_json


def test_save_json_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'metrics.json'
    save_json({'a': 1}, str(path))
    with pytest.raises(TypeError):
        save_json({'a': object()}, str(path))
    assert json.loads(path.read_text()) == {'a': 1}
    assert os.listdir(tmp_path) == ['metrics.json']


def test_markdown_table():
    assert markdown_table(['a', 'b'], [[1, 'x'], [2.5, None]]) == (
        '| a | b |\n|---|---|\n| 1 | x |\n| 2.5 | None |')
    with pytest.raises(ValueError, match='a row has 1 cells for 2 columns'):
        markdown_table(['a', 'b'], [[1]])
