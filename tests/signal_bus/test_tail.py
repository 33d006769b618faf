"""signal-tail as a real process against a real broker: lines, JSON, replay, --wait (and its
grace for a reopened task), silence and the errors a newcomer meets first."""
from __future__ import annotations

import io
import json
import signal
import sys
import threading

import pytest

from signal_bus.event import Event
from signal_bus.tail import build_parser, format_line, main

from scripts.support.polling import wait_until
from tests.signal_bus.bus_rig import Running, subscribed


BOOM = {'type': 'ValueError', 'message': 'uh-oh', 'traceback': 'Traceback...'}


def start_tail(bus, *args: str) -> Running:
    """``signal-tail`` in a subprocess, pointed at ``bus``."""
    return Running([sys.executable, '-m', 'signal_bus.tail', '--connect', bus.publish,
                    '--control', bus.control, *args])


def test_json_lines_parse_one_by_one_and_summary_goes_to_stderr(bus):
    tail = start_tail(bus, '--json')
    subscribed(bus)
    ids = [bus.send('enqueued'), bus.send('error', exc=BOOM), bus.send('complete')]
    objects = [json.loads(line) for line in tail.read(3)]
    status, err = tail.finish(signal.SIGINT)
    assert [o['task_id'] for o in objects] == ids
    assert [o['seq'] for o in objects] == [1, 2, 3]
    assert objects[1]['exc'] == BOOM and objects[1]['signal'] == 'error'
    assert {'signal', 'task_name', 'tseq', 'ts', 'host', 'pid', 'source', 'args', 'kwargs',
            'retries', 'final', 'sseq', 'epoch'} <= set(objects[0])
    assert status == 0
    assert 'signal-tail: 3 events (complete 1, enqueued 1, error 1); 0 missed' in err


def test_readable_lines_filtered_by_signal_task_and_id_until_sigterm(bus):
    tail = start_tail(bus, '--signal', 'error', 'complete', '--task', 'app.*',
                '--id', 't-err', 't-done', 't-other')
    subscribed(bus, 3)  # one subscription per signal, plus the meta topics
    bus.send('enqueued', 'app.tasks.add', task_id='t-done')
    bus.send('complete', 'other.jobs.add', task_id='t-other')
    bus.send('complete', 'app.tasks.add', task_id='t-unlisted')
    bus.send('error', 'app.tasks.boom', task_id='t-err', exc=BOOM, retries=2)
    bus.send('complete', 'app.tasks.add', task_id='t-done')
    first, second = tail.read(2)
    status, err = tail.finish(signal.SIGTERM)
    assert first.split()[2:] == ['error', 'app.tasks.boom', 't-err', 'retries=2',
                                 'ValueError:', 'uh-oh']
    assert second.split()[2:] == ['complete', 'app.tasks.add', 't-done', 'retries=0']
    assert tail.lines.empty()
    assert status == 0
    assert '2 events (complete 1, error 1); 0 missed' in err


def test_replay_starts_with_the_last_n_events_of_the_ring(bus):
    ids = [bus.send('complete') for _ in range(5)]
    bus.wait_published(5)
    tail = start_tail(bus, '--json', '--replay', '3', '--timeout', '1')
    lines = tail.read(3)
    status, err = tail.finish()
    assert [json.loads(line)['task_id'] for line in lines] == ids[2:]
    assert status == 0 and '3 events (complete 3)' in err


def test_wait_finds_a_task_that_already_completed_in_the_ring(bus):
    task_id = bus.send('enqueued')
    bus.send('complete', task_id=task_id)
    bus.send('complete')
    bus.wait_published(3)
    tail = start_tail(bus, '--wait', task_id, '--timeout', '20')
    status, err = tail.finish()
    assert status == 0
    assert '2 events (complete 1, enqueued 1)' in err


FINAL_ERROR_AFTER_A_RETRY = [('error', {'exc': BOOM, 'final': False}), ('retrying', {}),
                             ('error', {'exc': BOOM, 'final': True})]
COMPLETE = [('executing', {}), ('complete', {})]


@pytest.mark.parametrize('events, status', [(FINAL_ERROR_AFTER_A_RETRY, 1), (COMPLETE, 0)])
def test_wait_exits_at_the_final_event_published_live(bus, events, status):
    task_id = 'task-under-watch'
    tail = start_tail(bus, '--wait', task_id, '--timeout', '20')
    subscribed(bus)
    bus.send('complete')  # another task: neither printed nor the end
    for name, body in events:
        bus.send(name, task_id=task_id, **body)
    exit_status, err = tail.finish()
    assert exit_status == status
    assert '%d events' % len(events) in err


def test_wait_exits_3_when_the_timeout_passes_first(bus):
    bus.send('enqueued', task_id='slow-task')
    tail = start_tail(bus, '--wait', 'slow-task', '--timeout', '0.5')
    status, err = tail.finish()
    assert status == 3
    assert '1 events (enqueued 1)' in err


@pytest.mark.parametrize('argv', [['--signal', 'finished'], ['--replay', '-1'],
                                  ['--timeout', '0'], ['--bogus']])
def test_bad_arguments_exit_2(argv, capsys):
    assert main(argv) == 2
    assert 'signal-tail' in capsys.readouterr().err


def test_format_line_shows_time_signal_name_id_retries_and_error():
    event = Event({'signal': 'error', 'task_id': 'abc', 'task_name': 'app.tasks.boom',
                   'ts': 0.5, 'retries': 1, 'exc': BOOM, 'seq': 1})
    line = format_line(event)
    assert line.split()[2:] == ['error', 'app.tasks.boom', 'abc', 'retries=1', 'ValueError:',
                                'uh-oh']
    assert line.split()[1].endswith('.500')


@pytest.mark.parametrize('fails, status', [(False, 0), (True, 1)])
def test_wait_on_a_task_run_by_a_real_queue_with_the_bus_attached(bus, fails, status):
    from queue_core import TaskQueue
    queue = TaskQueue('tail-test', storage='memory://', immediate=True, bus=bus.ingest)

    @queue.task()
    def divide(a, b):
        return a / b

    try:
        handle = divide(1, 0 if fails else 1)
        bus.wait_published(3)
    finally:
        queue.close()
    tail = start_tail(bus, '--json', '--wait', handle.id, '--timeout', '20')
    lines = [json.loads(line) for line in tail.read(3)]
    exit_status, _ = tail.finish()
    assert exit_status == status
    assert [line['signal'] for line in lines] == [
        'enqueued', 'executing', 'error' if fails else 'complete']
    assert {line['task_name'] for line in lines} == {'test_tail.divide'}
    assert lines[-1]['final'] is True and [line['tseq'] for line in lines] == [1, 2, 3]


class LineSink:
    """A text stream whose lines a test can wait for (``main``'s stderr in a thread)."""

    def __init__(self) -> None:
        self.text = ''

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        """The complete lines written so far."""
        return self.text.splitlines()


def tail_in_thread(bus, *args: str) -> tuple[threading.Thread, LineSink, list[int]]:
    """``main()`` in a thread with its stderr captured; its exit status lands in the list."""
    err, status = LineSink(), []
    argv = ['--connect', bus.publish, '--control', bus.control, *args]
    thread = threading.Thread(target=lambda: status.append(main(argv, io.StringIO(), err)),
                              daemon=True)
    thread.start()
    return thread, err, status


def test_tail_prints_one_line_when_its_broker_falls_silent_and_one_when_it_is_back(bus):
    thread, err, status = tail_in_thread(bus, '--wait', 'last-task', '--timeout', '120')
    subscribed(bus)
    bus.stop()
    wait_until(lambda: any('no heartbeat' in line for line in err.lines()), timeout=30,
               message='the silence line')
    bus.start()
    wait_until(lambda: any('heard again' in line for line in err.lines()), timeout=30,
               message='the heard-again line')
    bus.send('complete', task_id='last-task')
    thread.join(30)
    assert status == [0]
    silence = [line for line in err.lines() if 'no heartbeat' in line or 'heard again' in line]
    assert len(silence) == 2 and silence[0].startswith('signal-tail: no heartbeat from')
    assert bus.publish in silence[0] and bus.publish in silence[1]


@pytest.mark.parametrize('extra', [[], ['--wait', 'some-task'], ['--replay', '5']])
def test_exit_4_when_no_broker_was_ever_heard_before_the_timeout(extra):
    from scripts.support.ports import free_port
    err = io.StringIO()
    argv = ['--connect', 'tcp://127.0.0.1:%d' % free_port(), '--timeout', '1', *extra]
    assert main(argv, io.StringIO(), err) == 4
    assert 'never heard a broker at tcp://127.0.0.1:' in err.getvalue()
    assert '0 events' in err.getvalue()


def test_connect_without_a_transport_says_to_add_tcp(capsys):
    assert main(['--connect', 'localhost:7558']) == 2
    err = capsys.readouterr().err
    assert "add tcp:// (tcp://localhost:7558)" in err


@pytest.mark.parametrize('glob', ['slow', 'send_mail'])
def test_a_task_glob_without_a_dot_says_task_names_are_module_function(glob):
    err = io.StringIO()
    assert main(['--task', glob, '--connect', 'tcp://127.0.0.1:9'], io.StringIO(), err) == 2
    assert 'task names are module.function' in err.getvalue()
    assert "'*.%s'" % glob in err.getvalue()


def test_json_help_says_the_output_is_json_lines():
    assert 'JSON lines' in ' '.join(build_parser().format_help().split())


REOPENED = [('interrupted', {'final': True}), ('enqueued', {'source': 'consumer'}),
            ('executing', {}), ('complete', {})]


def test_wait_follows_a_task_reopened_after_a_final_interrupted_to_its_completion(bus):
    tail = start_tail(bus, '--json', '--wait', 'reopened', '--timeout', '30')
    subscribed(bus)
    for name, body in REOPENED:
        bus.send(name, task_id='reopened', **body)
    lines = [json.loads(line) for line in tail.read(4)]
    status, err = tail.finish()
    assert [line['signal'] for line in lines] == [name for name, _ in REOPENED]
    assert status == 0 and '4 events' in err


def test_wait_exits_1_when_nothing_reopens_the_task_within_the_grace(bus):
    tail = start_tail(bus, '--wait', 'gone', '--grace', '0.5', '--timeout', '30')
    subscribed(bus)
    bus.send('interrupted', task_id='gone', final=True)
    bus.send('enqueued', task_id='another-task')
    status, err = tail.finish()
    assert status == 1 and '1 events (interrupted 1)' in err


def test_the_grace_never_runs_past_the_timeout(bus):
    tail = start_tail(bus, '--wait', 'gone', '--grace', '600', '--timeout', '2')
    subscribed(bus)
    bus.send('interrupted', task_id='gone', final=True)
    status, err = tail.finish(timeout=60)
    assert status == 1 and '1 events (interrupted 1)' in err


def test_wait_exits_0_when_a_task_reenqueued_by_the_interrupted_handler_completes(
        bus, tmp_path, redis_url):
    """End to end: a real consumer running the task is stopped with SIGTERM, the seed's
    handler re-enqueues it, a second consumer completes it; the tail follows throughout."""
    from tests.end_to_end.consumer_harness import Run
    run = Run(tmp_path, redis_url)
    env = {'QUEUE_REENQUEUE_INTERRUPTED': '1'}
    try:
        first = run.consumer('-w', '1', '--bus', bus.ingest, env=env)
        handle = run.app.slow_once('tail-reopened')
        run.wait_running('tail-reopened')
        tail = start_tail(bus, '--json', '--wait', handle.id, '--timeout', '90')
        subscribed(bus)
        first.send_group(signal.SIGTERM)
        assert first.wait(30) == 0
        seen = [json.loads(tail.read_until(lambda line: 'interrupted' in line, 30))]
        run.consumer('-w', '1', '--bus', bus.ingest, env=env)
        seen += [json.loads(line) for line in tail.read(3, timeout=60)]
        status, err = tail.finish(timeout=60)
    finally:
        run.close()
    assert status == 0, err + run.logs()
    assert [(e['signal'], e['final']) for e in seen] == [
        ('interrupted', True), ('enqueued', False), ('executing', False), ('complete', True)]


def test_a_tail_still_waiting_for_its_first_broker_says_so_after_3_seconds():
    from scripts.support.ports import free_port
    err = io.StringIO()
    argv = ['--connect', 'tcp://127.0.0.1:%d' % free_port(), '--wait', 'x', '--timeout', '5']
    assert main(argv, io.StringIO(), err) == 4
    lines = err.getvalue().splitlines()
    assert [line for line in lines if 'no heartbeat from the broker' in line] == [lines[0]]
    assert 'never heard a broker' in lines[1]


def test_a_tail_whose_key_the_broker_refuses_says_so_and_exits_4(tmp_path):
    from tests.signal_bus.bus_rig import refusing_bus
    secure, broker_public = refusing_bus(tmp_path)
    try:
        tail = start_tail(secure, '--curve-server-key', broker_public, '--timeout', '4')
        status, err = tail.finish(timeout=60)
    finally:
        secure.close()
    assert status == 4
    refusals = [line for line in err.splitlines() if 'refused' in line]
    assert len(refusals) == 1 and refusals[0].startswith('signal-tail: subscriber: handshake')
