"""No task vanishes: SIGKILL of a worker, of the supervisor, or of the whole consumer
mid-task; every dequeued task ends with a final signal (and, with
--requeue-interrupted, eventually completes)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import signal_bus

from scripts.support.polling import wait_until
from scripts.support.ports import free_port
from tests.end_to_end.consumer_harness import pid_is_running


E, X, C, INT = 'enqueued', 'executing', 'complete', 'interrupted'


def running_pid(run, key):
    """Pid of the worker inside ``slow_once(key)``."""
    run.wait_running(key)
    return [r['pid'] for r in run.rows() if r['signal'] == '_running' and r['id'] == key][0]


def assert_no_silent_loss(run, ids, final_signal=None):
    """Every task enqueued has exactly one final signal (of the given kind, if any)."""
    finals = run.finals()
    assert sorted(finals) == sorted(ids), (finals, run.logs())
    assert all(len(signals) == 1 for signals in finals.values()), finals
    if final_signal is not None:
        assert {s[0] for s in finals.values()} == {final_signal}, finals


def test_sigkill_of_a_worker_reports_its_task_and_replaces_the_worker(run):
    victim = run.app.slow_once('victim')
    others = [run.app.sleep_for(0.1) for _ in range(3)]
    consumer = run.consumer('-w', '2', '--lease', '2')
    pid = running_pid(run, 'victim')
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: run.signals(victim.id) == [E, X, INT], 10,
               message='INTERRUPTED for the killed task\n' + run.logs())
    report = [r for r in run.rows() if r['id'] == victim.id and r['signal'] == INT][0]
    assert report['source'] == 'consumer' and report['final'] is True
    assert report['pid'] == consumer.pid
    wait_until(lambda: len(consumer.worker_pids()) == 2 and pid not in consumer.worker_pids(),
               5, message='a replacement worker within 5 s')
    ids = [victim.id] + [h.id for h in others]
    wait_until(lambda: len(run.finals()) == 4, 20, message='every task final')
    assert_no_silent_loss(run, ids)
    assert run.q.in_flight() == []
    consumer.send(signal.SIGINT)
    assert consumer.wait(20) == 0


def test_killed_worker_task_is_requeued_with_requeue_interrupted(run):
    victim = run.app.slow_once('requeued')
    consumer = run.consumer('-w', '1', '--lease', '2', '--requeue-interrupted')
    os.kill(running_pid(run, 'requeued'), signal.SIGKILL)
    assert victim.get(blocking=True, timeout=20) == 'fast'
    # The result is readable just before COMPLETE is emitted.
    wait_until(lambda: run.signals(victim.id) == [E, X, INT, E, X, C], 10,
               message='the requeued run to complete')
    sources = [r['source'] for r in run.rows() if r['id'] == victim.id]
    assert sources[2:4] == ['consumer', 'consumer']
    assert_no_silent_loss(run, [victim.id], C)
    consumer.send(signal.SIGINT)
    assert consumer.wait(20) == 0


def test_sigkill_of_the_whole_consumer_then_a_new_consumer_loses_nothing(run):
    keys = ['group-%d' % i for i in range(2)]
    slow = [run.app.slow_once(key) for key in keys]
    quick = [run.app.sleep_for(0.05) for _ in range(4)]
    ids = [h.id for h in slow + quick]
    args = ('-w', '2', '--lease', '2', '--requeue-interrupted')
    first = run.consumer(*args)
    for key in keys:
        run.wait_running(key)
    first.send_group(signal.SIGKILL)
    first.wait(10)
    # Abandoned, nobody renews them any more: the two running tasks, and maybe quick
    # ones finished just before (their records go with the next claim, which never came).
    assert {row['name'] for row in run.q.in_flight()} >= {'signals_app.slow_once'}

    second = run.consumer(*args)
    wait_until(lambda: len(run.finals()) == len(ids), 30,
               message='every task final after the restart\n' + run.logs())
    assert_no_silent_loss(run, ids, C)
    for handle in slow:
        assert run.signals(handle.id) == [E, X, INT, E, X, C]
    assert run.q.in_flight() == [] and run.q.pending_count() == 0
    second.send(signal.SIGINT)
    assert second.wait(20) == 0


def test_workers_stop_when_their_supervisor_is_killed(run):
    victim = run.app.slow_once('orphan')
    consumer = run.consumer('-w', '1', '--lease', '1.5')
    worker = running_pid(run, 'orphan')
    consumer.send(signal.SIGKILL)
    consumer.wait(10)
    # The worker notices its parent is gone, interrupts its task and exits.
    wait_until(lambda: run.signals(victim.id) == [E, X, INT], 15,
               message='the orphaned worker to report its task\n' + run.logs())
    report = [r for r in run.rows() if r['id'] == victim.id and r['signal'] == INT][0]
    assert report['source'] == 'worker' and report['pid'] == worker
    wait_until(lambda: not pid_is_running(worker), 15, message='the orphaned worker to exit')
    assert run.q.in_flight() == []


def test_after_a_whole_consumer_restart_a_subscriber_sees_each_recovered_task_in_order(
        run, tmp_path):
    """Issue 10, item 5: through a real broker that outlives the consumer, a recovered
    task's stream is the old attempt's ``executing`` (tseq 1), then the recovery's
    ``interrupted`` (no tseq) and ``enqueued``, then the new attempt, in ``seq`` order and
    with no event released after a hold-back gap."""
    import subprocess
    import signal_bus
    from scripts.support.ports import free_port
    ingest, publish, control = ['tcp://127.0.0.1:%d' % free_port() for _ in range(3)]
    with open(tmp_path / 'broker.log', 'wb') as log:
        broker = subprocess.Popen([sys.executable, '-m', 'signal_bus.broker_cli', '--ingest',
                                   ingest, '--publish', publish, '--control', control, '-q'],
                                  stdout=log, stderr=subprocess.STDOUT)
    sub = signal_bus.Subscriber(publish, control=control)
    try:
        sub.wait_connected(timeout=30)
        keys = ['order-%d' % i for i in range(2)]
        slow = [run.app.slow_once(key) for key in keys]
        args = ('-w', '2', '--lease', '2', '--requeue-interrupted', '--bus', ingest)
        first = run.consumer(*args)
        for key in keys:
            run.wait_running(key)
        first.send_group(signal.SIGKILL)
        first.wait(10)
        second = run.consumer(*args)
        events: dict[str, list] = {h.id: [] for h in slow}

        def all_complete():
            event = sub.receive(timeout=0.2)
            if event is not None and event.id in events:
                events[event.id].append(event)
            return all(any(e.signal == C for e in got) for got in events.values())

        wait_until(all_complete, 30, interval=0, message='both tasks to complete on the '
                   'bus\n' + run.logs())
        for got in events.values():
            assert [(e.signal, e.source) for e in got] == [
                (X, 'worker'), (INT, 'consumer'), (E, 'consumer'), (X, 'worker'),
                (C, 'worker')], [(e.signal, e.tseq, e.seq, e.gap) for e in got]
            tseqs = [e.tseq for e in got]
            assert tseqs[0] == 1 and tseqs[1] is None and tseqs[2] > 100
            assert tseqs[2:] == list(range(tseqs[2], tseqs[2] + 3))
            assert [e.seq for e in got] == sorted(e.seq for e in got)
            assert not any(e.gap for e in got), [(e.signal, e.tseq, e.gap) for e in got]
        second.send(signal.SIGINT)
        assert second.wait(20) == 0
    finally:
        sub.close()
        broker.kill()
        broker.wait(10)
