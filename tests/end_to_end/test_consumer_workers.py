"""Worker behaviour through the real consumer: timeouts, --max-tasks, thread workers,
the health check, and periodic tasks run by the consumer's scheduler."""
from __future__ import annotations

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'apps'))

from consumer_harness import Run  # noqa: E402
from helpers import wait_until  # noqa: E402

E, X, C, INT = 'enqueued', 'executing', 'complete', 'interrupted'


@pytest.fixture
def run(tmp_path, redis_url):
    run = Run(tmp_path, redis_url)
    yield run
    run.close()


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
