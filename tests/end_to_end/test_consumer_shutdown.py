"""Shutdown through real OS signals: SIGINT graceful, SIGTERM immediate (INTERRUPTED, and
the seed's re-enqueue handler), --shutdown-timeout, SIGHUP re-execution (Huey's restart), hooks per worker."""
from __future__ import annotations

import signal

import pytest

from scripts.support.polling import wait_until


E, X, C, INT = 'enqueued', 'executing', 'complete', 'interrupted'


def wait_signals(run, task_id, expected, timeout=20):
    wait_until(lambda: run.signals(task_id) == expected, timeout,
               message='%s: %s, got %s\n%s' % (task_id, expected, run.signals(task_id),
                                               run.logs()))


def test_sigint_to_the_group_lets_running_tasks_finish_and_starts_nothing_new(run):
    handles = [run.app.gated('sigint', 'task-%d' % i) for i in range(3)]
    consumer = run.consumer('-w', '2', '--lease', '2')
    wait_until(lambda: sum(r['signal'] == '_running' for r in run.rows()) == 2, 20,
               message='two tasks running\n' + run.logs())
    consumer.send_group(signal.SIGINT)
    wait_until(lambda: 'graceful shutdown' in consumer.log(), 20, message='the stop')
    run.q.storage.put_data('gate:sigint', b'1')  # let the running tasks finish
    assert consumer.wait(20) == 0
    outcomes = sorted(run.signals(h.id) for h in handles)
    assert outcomes == [[E], [E, X, C], [E, X, C]]
    assert run.q.pending_count() == 1
    assert run.q.in_flight() == []
    workers = {r['pid'] for r in run.rows() if r['signal'] == X}
    assert {r['pid'] for r in run.rows() if r['signal'] == '_startup'} == workers
    assert {r['pid'] for r in run.rows() if r['signal'] == '_shutdown'} == workers


@pytest.mark.parametrize('to_group', [False, True], ids=['supervisor', 'group'])
def test_sigterm_interrupts_the_running_task_and_the_seed_handler_requeues_it(run, to_group):
    handle = run.app.slow_once('term')
    env = {'QUEUE_REENQUEUE_INTERRUPTED': '1'}
    consumer = run.consumer('-w', '2', '--lease', '2', env=env)
    run.wait_running('term')
    (consumer.send_group if to_group else consumer.send)(signal.SIGTERM)
    assert consumer.wait(20) == 0
    # The seed's handler is a named INTERRUPTED handler, so it runs (and its enqueue
    # emits ENQUEUED) before the app's catch-all recorder sees INTERRUPTED.
    assert run.signals(handle.id) == [E, X, E, INT]
    interrupted = [r for r in run.rows() if r['signal'] == INT][0]
    assert interrupted['source'] == 'worker'
    assert run.q.in_flight() == [] and run.q.pending_count() == 1

    restarted = run.consumer('-w', '1', '--lease', '2')
    wait_signals(run, handle.id, [E, X, E, INT, X, C])
    assert handle.get(blocking=True, timeout=10) == 'fast'
    restarted.send(signal.SIGINT)
    assert restarted.wait(20) == 0


def test_shutdown_timeout_interrupts_tasks_a_graceful_stop_waits_for(run):
    handle = run.app.slow_once('grace')
    consumer = run.consumer('-w', '1', '--lease', '2', '--shutdown-timeout', '0.5')
    run.wait_running('grace')
    consumer.send(signal.SIGINT)
    assert consumer.wait(20) == 0
    assert run.signals(handle.id) == [E, X, INT]
    assert run.q.in_flight() == []


def test_sighup_lets_the_running_task_finish_and_executes_the_consumer_again(run):
    first = run.app.sleep_for(0.5)
    consumer = run.consumer('-w', '1', '--lease', '2')
    wait_signals(run, first.id, [E, X])
    old_pid = [r['pid'] for r in run.rows() if r['signal'] == X][0]
    consumer.send(signal.SIGHUP)
    wait_signals(run, first.id, [E, X, C])
    wait_until(lambda: [p for p in consumer.worker_pids() if p != old_pid], 20,
               message='a replacement worker')
    second = run.app.add(2, 2)
    assert second.get(blocking=True, timeout=10) == 4
    new_pid = [r['pid'] for r in run.rows() if r['id'] == second.id and r['signal'] == X][0]
    assert new_pid != old_pid
    assert 'executing it again (SIGHUP)' in consumer.log()
    assert consumer.log().count('consumer started') == 2  # the same pid, a new image
    consumer.send(signal.SIGINT)
    assert consumer.wait(20) == 0
