"""Worker behaviour through the real consumer: timeouts, --max-tasks, thread workers,
the health check, and periodic tasks run by the consumer's scheduler."""
from __future__ import annotations

import datetime
import os
import shutil
import signal

import pytest

from scripts.support.polling import wait_until
from tests.end_to_end.consumer_harness import Run


E, X, C, INT = 'enqueued', 'executing', 'complete', 'interrupted'


def stop(consumer):
    consumer.send(signal.SIGINT)
    assert consumer.wait(20) == 0


def test_task_timeout_interrupts_the_task_in_a_process_worker(run):
    handle = run.app.too_slow()
    after = run.app.add(1, 1)
    consumer = run.consumer('-w', '1', '--lease', '2')
    assert after.get(blocking=True, timeout=20) == 2  # the worker was freed by the timeout
    assert run.signals(handle.id) == [E, X, 'timeout']
    stop(consumer)
    assert 'at its timeout of 0.5s' in consumer.log()


def test_max_tasks_recycles_the_worker(run):
    handles = [run.app.add(i, 1) for i in range(3)]
    consumer = run.consumer('-w', '1', '--lease', '2', '--max-tasks', '1')
    assert [h.get(blocking=True, timeout=20) for h in handles] == [1, 2, 3]
    pids = [r['pid'] for r in run.rows() if r['signal'] == X]
    assert len(set(pids)) == 3
    stop(consumer)


def test_thread_workers_run_tasks_and_sigterm_waits_for_them(run):
    handle = run.app.sleep_for(1.0)
    consumer = run.consumer('-w', '2', '-k', 'thread', '--lease', '2')
    wait_until(lambda: run.signals(handle.id) == [E, X], 20, message='the task to start')
    consumer.send(signal.SIGTERM)
    assert consumer.wait(20) == 0
    assert run.signals(handle.id) == [E, X, C]
    assert {r['pid'] for r in run.rows() if r['signal'] == X} == {consumer.pid}


def test_health_check_replaces_a_stuck_worker(run):
    victim = run.app.slow_once('stuck')
    consumer = run.consumer('-w', '1', '--lease', '1', '-c', '0.5')
    run.wait_running('stuck')
    stuck = [r['pid'] for r in run.rows() if r['signal'] == '_running'][0]
    os.kill(stuck, signal.SIGSTOP)
    wait_until(lambda: run.signals(victim.id) == [E, X, INT], 20,
               message='the stuck worker to be replaced\n' + run.logs())
    assert 'has not reported' in consumer.log()
    after = run.app.add(2, 3)
    assert after.get(blocking=True, timeout=20) == 5
    stop(consumer)


def test_flush_locks_at_start_frees_a_lock_left_by_a_dead_consumer(run):
    run.q.storage.put_data('lock.e2e-exclusive', b'1')  # as a killed worker leaves it
    assert run.q.is_locked('e2e-exclusive')
    consumer = run.consumer('-w', '1', '-f', '--lease', '2')
    wait_until(lambda: not run.q.is_locked('e2e-exclusive'), 20, message='the flush')
    assert run.app.exclusive().get(blocking=True, timeout=20) == 'alone'
    stop(consumer)


def test_console_script_on_sqlite_storage_with_a_log_file(tmp_path, sqlite_url):
    script = shutil.which('queue-consumer')
    if script is None:
        pytest.skip('the queue-consumer console script is not installed')
    run = Run(tmp_path, sqlite_url)
    logfile = str(tmp_path / 'consumer-file.log')
    try:
        done = run.app.add(20, 22)
        retried = run.app.fail_once('sqlite')
        consumer = run.consumer('-w', '2', '--lease', '2', '-l', logfile, command=[script])
        assert done.get(blocking=True, timeout=20) == 42
        wait_until(lambda: run.signals(retried.id) == [E, X, 'error', 'retrying', E, X, C],
                   20, message='the retried task\n' + run.logs())
        stop(consumer)
        with open(logfile) as handle:
            text = handle.read()
        assert 'consumer started: 2 process worker(s)' in text
        assert 'complete in' in text and 'consumer stopped' in text
    finally:
        run.close()


def test_two_consumers_enqueue_a_periodic_task_once_per_minute(run):
    started = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    env = {'QUEUE_PERIODIC': '1'}
    consumers = [run.consumer('-w', '1', '--lease', '2', env=env) for _ in range(2)]
    quiet = run.consumer('-w', '1', '--lease', '2', '-n', env=env)

    def periodic_runs():
        return [r for r in run.rows() if r['name'] == 'every_minute' and r['signal'] == C]

    wait_until(periodic_runs, 20, message='the periodic task\n' + run.logs())
    for consumer in consumers + [quiet]:
        wait_until(lambda: 'worker' in consumer.log() and 'started' in consumer.log(), 20,
                   message='every consumer to be running')
    for consumer in consumers + [quiet]:
        stop(consumer)
    ended = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    minutes = int((ended - started).total_seconds() // 60) + 1
    assert 1 <= len(periodic_runs()) <= minutes
    enqueues = [r for r in run.rows() if r['name'] == 'every_minute' and r['signal'] == E]
    assert {r['source'] for r in enqueues} == {'scheduler'}
    assert quiet.pid not in {r['pid'] for r in enqueues}


def test_workers_that_die_at_start_are_restarted_with_a_pause_not_a_fork_loop(run):
    consumer = run.consumer('-w', '1', '--lease', '2', env={'QUEUE_CRASH_ON_START': '1'})

    def startups():
        return [r['pid'] for r in run.rows() if r['signal'] == '_startup']

    wait_until(lambda: len(startups()) >= 4, 20, message='restarts\n' + run.logs())
    assert len(set(startups())) == len(startups())  # each one a new process
    assert 'died (exit status 3)' in consumer.log()
    assert consumer.proc is not None and consumer.proc.poll() is None
    stop(consumer)
    # Pauses of at least 0.2, 0.4 and 0.8 s separate the first four starts.
    starts = [datetime.datetime.strptime(line[:23], '%Y-%m-%d %H:%M:%S,%f')
              for line in consumer.log().splitlines()
              if 'queue_core.consumer: worker' in line and line.endswith(' started')]
    assert (starts[3] - starts[0]).total_seconds() >= 1.4
