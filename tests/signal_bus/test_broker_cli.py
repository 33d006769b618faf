"""``signal-broker`` as people run it: arguments, a real process, SIGINT and SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import zmq

from signal_bus import Publisher
from signal_bus.broker_cli import build_parser, config_from_args, main

from scripts.support.ports import free_port
from tests.signal_bus.bus_helpers import ControlClient, FakeTask, RawSubscriber, body_of


def test_parser_defaults_follow_the_spec():
    config = config_from_args(build_parser().parse_args([]))
    assert (config.ingest, config.publish, config.control) == (
        'tcp://127.0.0.1:7557', 'tcp://127.0.0.1:7558', 'tcp://127.0.0.1:7559')
    assert (config.ring, config.hold_ms, config.max_event_bytes) == (100_000, 100, 262_144)


def test_parser_reads_every_option():
    args = build_parser().parse_args([
        '--ingest', 'tcp://127.0.0.1:1', '--publish', 'tcp://127.0.0.1:2',
        '--control', 'tcp://127.0.0.1:3', '--ring', '5', '--hold-ms', '7',
        '--max-event-bytes', '999', '--curve-secret-key', 'b.key_secret',
        '--curve-authorized-keys', 'keys', '-v'])
    config = config_from_args(args)
    assert (config.ring, config.hold_ms, config.max_event_bytes) == (5, 7, 999)
    assert (config.curve_secret_key, config.curve_authorized_keys) == ('b.key_secret', 'keys')


@pytest.mark.parametrize('argv', [
    ['--ring', '0'], ['--hold-ms', '-1'], ['--bogus'], ['--ingest', 'not-an-endpoint'],
    ['--max-event-bytes', '999999999'], ['--curve-authorized-keys', 'dir'],
    ['--curve-secret-key', '/nonexistent/broker.key_secret', '--ingest', 'tcp://127.0.0.1:*',
     '--publish', 'tcp://127.0.0.1:*', '--control', 'tcp://127.0.0.1:*'],
])
def test_bad_arguments_exit_2(argv, capsys):
    assert main(argv) == 2
    assert 'signal-broker' in capsys.readouterr().err


@pytest.mark.parametrize('stop_signal', [signal.SIGINT, signal.SIGTERM])
def test_broker_process_serves_and_exits_0_on_signal(stop_signal):
    ingest, publish, control = ('tcp://127.0.0.1:%d' % free_port() for _ in range(3))
    process = subprocess.Popen(
        [sys.executable, '-c', 'from signal_bus.broker_cli import entry_point; entry_point()',
         '--ingest', ingest, '--publish', publish, '--control', control, '-q'],
        env=dict(os.environ, PYTHONUNBUFFERED='1'))
    context = zmq.Context()
    publisher = Publisher(ingest)
    try:
        sub = RawSubscriber(context, publish)
        sub.wait_connected(timeout=30)
        publisher.publish('enqueued', FakeTask(id='via-cli', tseq=1))
        assert body_of(sub.events(1)[0])['task_id'] == 'via-cli'
        assert ControlClient(context, control).stats()['published'] == 1
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
    finally:
        publisher.close()
        if process.poll() is None:
            process.kill()
            process.wait()
        context.destroy(linger=0)
