import argparse
import json
import subprocess
import sys

import pytest
import torch

from torch_lie.training import check_counts, check_out, load_runs


def test_check_counts_is_a_usage_error(capsys):
    parser = argparse.ArgumentParser(prog='x')
    parser.add_argument('--epochs', type=int, default=1)
    check_counts(parser, parser.parse_args([]), ['epochs'])
    with pytest.raises(SystemExit) as info:
        check_counts(parser, parser.parse_args(['--epochs', '0']), ['epochs'])
    assert info.value.code == 2
    assert 'x: error: --epochs must be >= 1' in capsys.readouterr().err


def test_check_out_before_any_work(tmp_path, capsys, monkeypatch):
    r"""--out is checked at parse time: a file, or a place that cannot be
    written, is a usage error; a new folder in a writable place is fine."""
    parser = argparse.ArgumentParser(prog='x')
    check_out(parser, str(tmp_path / 'new' / 'run'))
    assert not (tmp_path / 'new').exists()  # nothing made
    (tmp_path / 'file').write_text('')
    with pytest.raises(SystemExit) as info:
        check_out(parser, str(tmp_path / 'file'))
    assert info.value.code == 2
    assert "is a file: give a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        check_out(parser, str(tmp_path / 'file' / 'run'))
    assert 'is not a writable folder' in capsys.readouterr().err
    import os
    monkeypatch.setattr(os, 'access', lambda path, mode: False)
    with pytest.raises(SystemExit):
        check_out(parser, str(tmp_path / 'run'))
    assert 'cannot be written' in capsys.readouterr().err


def test_exit_on_error_prints_the_message_without_a_traceback():
    code = ('from torch_lie.training import exit_on_error\n'
            'def main():\n    raise ValueError("pass --fix")\n'
            'exit_on_error(main)\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and proc.stderr == 'error: pass --fix\n'


def test_load_runs_reads_metrics_and_names_missing_runs(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'a' / 'metrics.json').write_text(json.dumps({'x': 1}))
    assert load_runs([str(tmp_path / 'a')]) == {str(tmp_path / 'a'): {'x': 1}}
    with pytest.raises(FileNotFoundError, match="'.*b' has no metrics.json"):
        load_runs([str(tmp_path / 'b')])


def test_a_plain_context_wraps_nothing():
    from torch_lie.training import DistributedContext

    module = torch.nn.Linear(2, 2)
    assert DistributedContext().wrap(module) is module
