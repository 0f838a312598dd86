import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'

# Runs a script with --help and reports whether torch was imported.
PROBE = ('import runpy, sys; sys.argv = [{path!r}, "--help"]\n'
         'try:\n    runpy.run_path({path!r}, run_name="__main__")\n'
         'except SystemExit:\n    pass\n'
         'print("torch imported:", "torch" in sys.modules)')


@pytest.mark.parametrize('name', ['spring_dynamics', 'constellation', 'qm9',
                                  'molecules'])
def test_help_comes_before_the_slow_imports(name):
    path = str(EXAMPLES / f'{name}.py')
    out = subprocess.run([sys.executable, '-c', PROBE.format(path=path)],
                         capture_output=True, text=True, check=True).stdout
    assert f'usage: {name}.py' in out
    assert out.strip().endswith('torch imported: False')
