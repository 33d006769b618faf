"""``signal-keys`` names itself in its usage, its errors and its hints."""
from __future__ import annotations

import pytest

from signal_bus.exceptions import BusConfigError
from signal_bus.keys import build_parser, load_public_key, main


def test_usage_and_argument_errors_name_signal_keys(capsys):
    assert build_parser().format_usage().startswith('usage: signal-keys ')
    with pytest.raises(SystemExit) as stop:
        main([])
    assert stop.value.code == 2
    assert 'signal-keys: error: the following arguments are required' in capsys.readouterr().err


def test_a_directory_it_cannot_write_is_one_line_naming_signal_keys(tmp_path, capsys):
    blocker = tmp_path / 'a-file'
    blocker.write_text('not a directory')
    assert main([str(blocker / 'keys'), 'broker']) == 1
    err = capsys.readouterr().err
    assert err.startswith('signal-keys: cannot write a key pair into %s: ' % (blocker / 'keys'))
    assert err.count('\n') == 1


def test_a_key_that_is_neither_file_nor_z85_says_to_run_signal_keys():
    with pytest.raises(BusConfigError, match='generate one with: signal-keys DIR NAME'):
        load_public_key('no-such-key')
