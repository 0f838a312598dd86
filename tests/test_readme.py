import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / 'README.md'
BLOCKS = re.findall(r'```python\n(.*?)```', README.read_text(), re.S)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize('index', range(len(BLOCKS)))
def test_readme_block_runs(index):
    r"""Every Python block of the README runs verbatim."""
    exec(compile(BLOCKS[index], f'README.md block {index}', 'exec'), {})
