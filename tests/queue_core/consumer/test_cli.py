"""The ``queue-consumer`` command line: parsing, app loading, exit status 2 on errors."""
from __future__ import annotations

import os
import sys

import pytest

from queue_core.cli import build_parser, config_from_args, main
from queue_core.consumer.config import ConsumerConfig
from queue_core.consumer.loader import load_queue
from queue_core.exceptions import ConfigurationError

APPS_DIR = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'end_to_end', 'apps')


def parse(*argv: str) -> ConsumerConfig:
    return config_from_args(build_parser().parse_args(['app.q', *argv]))


def test_defaults_match_the_spec():
    config = parse()
    assert config == ConsumerConfig()
    assert (config.workers, config.worker_type, config.lease) == (1, 'process', 30.0)
    assert config.scheduler_interval == 1.0 and config.health_check_interval == 10.0
    assert config.periodic and not config.requeue_interrupted and not config.flush_locks
    assert config.max_tasks is None and config.shutdown_timeout is None


def test_every_option_reaches_the_config():
    config = parse('-w', '3', '-k', 'thread', '--bus', 'tcp://127.0.0.1:9', '--broker', '-n',
                   '-s', '0.5', '-C', '--lease', '6', '--requeue-interrupted', '-f',
                   '--max-tasks', '7', '--shutdown-timeout', '2')
    assert config == ConsumerConfig(workers=3, worker_type='thread', bus='tcp://127.0.0.1:9',
                                    broker=True, periodic=False, scheduler_interval=0.5,
                                    health_check_interval=None, lease=6.0,
                                    requeue_interrupted=True, flush_locks=True, max_tasks=7,
                                    shutdown_timeout=2.0)
    assert config.renew_interval == 2.0
    assert parse('-c', '3').health_check_interval == 3.0


@pytest.mark.parametrize('argv', [
    ['app.q', '-c', '3', '-C'],
    ['app.q', '-v', '-q'],
    ['app.q', '-w', '0'],
    ['app.q', '-k', 'fiber'],
    ['app.q', '-g', 'HUP'],
    ['app.q', '--lease', '-1'],
    ['app.q', '--max-tasks', 'many'],
    [],
])
def test_bad_arguments_exit_with_status_2(argv, capsys):
    assert main(argv) == 2
    assert 'usage: queue-consumer' in capsys.readouterr().err


@pytest.fixture
def apps_importable(monkeypatch):
    monkeypatch.chdir(APPS_DIR)
    monkeypatch.syspath_prepend(APPS_DIR)


@pytest.mark.parametrize('path, message', [
    ('no_such_module_anywhere.q', 'cannot import module'),
    ('signals_app.missing', "has no attribute 'missing'"),
    ('signals_app.add', 'not a TaskQueue'),
    ('signals_app', 'not of the form module.queue_object'),
])
def test_an_app_path_that_does_not_name_a_queue_exits_2(apps_importable, path, message,
                                                        capsys):
    assert main([path]) == 2
    err = capsys.readouterr().err
    assert message in err and 'queue-consumer: error:' in err


def test_memory_storage_with_process_workers_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / 'memory_app_for_cli.py').write_text(
        'from queue_core import TaskQueue\nq = TaskQueue("mem", storage="memory://")\n')
    monkeypatch.chdir(tmp_path)
    try:
        assert main(['memory_app_for_cli.q', '-w', '2']) == 2
    finally:
        sys.modules.pop('memory_app_for_cli', None)
    assert 'memory:// storage cannot be shared between processes' in capsys.readouterr().err


def test_the_current_directory_is_importable(tmp_path, monkeypatch):
    (tmp_path / 'cwd_app_for_cli.py').write_text(
        'from queue_core import TaskQueue\nhuey = TaskQueue("cwd", storage="memory://")\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'path', [p for p in sys.path if p not in ('', str(tmp_path))])
    try:
        assert load_queue('cwd_app_for_cli.huey').name == 'cwd'
    finally:
        sys.modules.pop('cwd_app_for_cli', None)


def test_a_module_that_fails_to_import_is_a_configuration_error(tmp_path, monkeypatch):
    (tmp_path / 'broken_app_for_cli.py').write_text('raise RuntimeError("boom at import")\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match='RuntimeError: boom at import'):
        load_queue('broken_app_for_cli.q')


def test_hueys_option_table_is_accepted_with_hueys_meaning():
    args = build_parser().parse_args([
        'app.q', '-w', '4', '-k', 'thread', '-d', '0.2', '-m', '8', '-b', '1.15', '-c', '7',
        '-f', '-L', 'one, two', '-M', '9', '-t', '3', '-g', 'TERM', '-s', '2', '-n',
        '-l', 'consumer.log', '-q', '-S'])
    config = config_from_args(args)
    assert (config.workers, config.worker_type, config.health_check_interval) == (4, 'thread', 7)
    assert (config.backoff_initial, config.backoff_max, config.backoff_factor) == (0.2, 8, 1.15)
    assert config.flush_locks and config.extra_locks == ('one', 'two')
    assert (config.max_tasks, config.shutdown_timeout, config.graceful_signal) == (9, 3, 'TERM')
    assert (config.scheduler_interval, config.periodic) == (2, False)
    assert (args.logfile, args.quiet, args.simple) == ('consumer.log', True, True)
    assert config_from_args(build_parser().parse_args(['app.q', '-C'])
                            ).health_check_interval is None
    assert build_parser().parse_args(['app.q', '-v']).verbose


def test_greenlet_workers_are_refused_in_one_line(capsys):
    assert main(['app.q', '-k', 'greenlet']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'greenlet workers are not supported' in err


def test_a_backoff_below_1_is_a_usage_error(capsys):
    assert main(['app.q', '-b', '0.5']) == 2
    err = capsys.readouterr().err
    assert 'usage: queue-consumer' in err and 'backoff factor must be at least 1' in err


def test_an_app_that_raises_while_imported_shows_its_own_traceback(tmp_path, monkeypatch,
                                                                     capsys):
    (tmp_path / 'raising_app_for_cli.py').write_text(
        'from queue_core import TaskQueue\nq = TaskQueue("r", storage="memory://")\n'
        'settings = {}\ntoken = settings["TOKEN"]\n')
    (tmp_path / 'needs_missing_for_cli.py').write_text('import no_such_dependency_here\n')
    monkeypatch.chdir(tmp_path)
    try:
        assert main(['raising_app_for_cli.q', '-k', 'thread']) == 2
        err = capsys.readouterr().err
        assert "importing 'raising_app_for_cli' raised KeyError: 'TOKEN'" in err
        assert 'Traceback' in err and 'raising_app_for_cli.py", line 4' in err
        assert 'PYTHONPATH' not in err and 'usage:' not in err
        # A module the app imports is missing: the app's traceback, not a PYTHONPATH hint.
        assert main(['needs_missing_for_cli.q', '-k', 'thread']) == 2
        err = capsys.readouterr().err
        assert "No module named 'no_such_dependency_here'" in err and 'Traceback' in err
        assert 'PYTHONPATH' not in err
    finally:
        sys.modules.pop('raising_app_for_cli', None)
        sys.modules.pop('needs_missing_for_cli', None)


def test_an_app_module_that_is_not_found_gets_the_pythonpath_hint_and_no_usage(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(['not_here_at_all.tasks.q']) == 2
    err = capsys.readouterr().err
    assert "no module named 'not_here_at_all'" in err and 'PYTHONPATH' in err
    assert 'usage:' not in err and 'Traceback' not in err


def test_bad_config_values_raise_configuration_error():
    with pytest.raises(ConfigurationError, match='workers must be at least 1'):
        ConsumerConfig(workers=0)
    with pytest.raises(ConfigurationError, match='worker type'):
        ConsumerConfig(worker_type='fiber')


@pytest.mark.parametrize('bus_args, message', [
    (['--bus', 'nonsense'], "bad --bus endpoint 'nonsense'"),
    (['--broker', '--bus', 'ipc:///tmp/no-port'], 'cannot derive a port'),
])
def test_a_bad_bus_endpoint_exits_2_before_anything_starts(tmp_path, monkeypatch, capsys,
                                                           bus_args, message):
    (tmp_path / 'bus_app_for_cli.py').write_text(
        'from queue_core import TaskQueue\nq = TaskQueue("bus", storage="memory://")\n')
    monkeypatch.chdir(tmp_path)
    try:
        assert main(['bus_app_for_cli.q', '-k', 'thread', *bus_args]) == 2
    finally:
        sys.modules.pop('bus_app_for_cli', None)
    assert message in capsys.readouterr().err


def test_simple_log_format_is_time_and_message(tmp_path):
    import logging

    from queue_core.cli import setup_logging
    log = tmp_path / 'consumer.log'
    handler = setup_logging(build_parser().parse_args(['app.q', '-S', '-l', str(log)]))
    try:
        logging.getLogger('queue_core.consumer').info('hello from -S')
    finally:
        logging.getLogger('queue_core').removeHandler(handler)
        handler.close()
    line = log.read_text().strip()
    assert line.endswith(' hello from -S') and len(line.split(' ')[0]) == len('04:10:00')
