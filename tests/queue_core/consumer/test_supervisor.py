"""The supervisor in-process, with thread workers on memory:// storage and a real SIGINT."""
from __future__ import annotations

import os
import signal
import threading


from queue_core import SIGNAL_COMPLETE, SIGNAL_INTERRUPTED, TaskQueue
from queue_core.consumer import ConsumerConfig, Supervisor
from queue_core.consumer.pool import make_owner, parse_owner
from queue_core.consumer.recovery import sweep_abandoned

from scripts.support.polling import wait_until


def make_queue():
    q = TaskQueue('sup', storage='memory://')
    seen: list = []
    q.signal(SIGNAL_COMPLETE, SIGNAL_INTERRUPTED)(
        lambda sig, task: seen.append((sig, task.id, q.source)))

    @q.task()
    def double(x):
        return 2 * x

    return q, double, seen


def interrupt_when(supervisor, predicate) -> threading.Thread:
    """Send SIGINT to this process once ``predicate`` holds (or after 20 s regardless),
    but only while the supervisor's handler is installed (never to the test runner)."""
    def watch():
        try:
            wait_until(predicate, 20)
        finally:
            if signal.getsignal(signal.SIGINT) == supervisor._on_signal:
                os.kill(os.getpid(), signal.SIGINT)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_thread_workers_run_tasks_and_sigint_stops_them_cleanly():
    q, double, seen = make_queue()
    handles = [double(i) for i in range(5)]
    supervisor = Supervisor(q, ConsumerConfig(workers=2, worker_type='thread', lease=3,
                                              periodic=False))
    watcher = interrupt_when(supervisor, lambda: len(seen) == 5)
    assert supervisor.run() == 0
    watcher.join(5)
    assert [h.get() for h in handles] == [0, 2, 4, 6, 8]
    assert {source for _, _, source in seen} == {'worker'}
    assert q.in_flight() == [] and supervisor.workers == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_owner_ids_name_host_and_pid():
    owner = make_owner(1234, 'abcd')
    assert owner.endswith(':1234:abcd')
    assert parse_owner(owner) == (owner.split(':')[0], 1234)
    assert parse_owner('not-an-owner') is None


def test_sweep_recovers_expired_and_dead_owner_records_but_not_live_ones():
    q, double, seen = make_queue()
    for i in range(3):
        double(i)
    live = make_owner(os.getpid(), 'live')
    dead_pid = 2 ** 22 + 12345  # above the default pid_max: no such process
    claims = [q.claim(live, 60), q.claim(make_owner(dead_pid, 'gone'), 60),
              q.claim('elsewhere:1:x', -1)]
    assert all(claims)
    assert sweep_abandoned(q, {live}) == 2
    assert [row['owner'] for row in q.in_flight()] == [live]
    assert [(sig, source) for sig, _, source in seen] == [('interrupted', 'consumer')] * 2


def signal_when(supervisor, predicate, signum) -> threading.Thread:
    """Send ``signum`` to this process once ``predicate`` holds, while the supervisor's
    handler for it is installed (never to the test runner)."""
    def watch():
        try:
            wait_until(predicate, 20)
        finally:
            if signal.getsignal(signum) == supervisor._on_signal:
                os.kill(os.getpid(), signum)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_graceful_signal_term_makes_sigterm_graceful_and_extra_locks_are_flushed(caplog):
    q, double, seen = make_queue()
    q.storage.put_data('lock.left-by-a-dead-consumer', b'1')
    handle = double(21)
    supervisor = Supervisor(q, ConsumerConfig(workers=1, worker_type='thread', periodic=False,
                                              graceful_signal='TERM',
                                              extra_locks=('left-by-a-dead-consumer',)))
    with caplog.at_level('INFO', logger='queue_core.consumer'):
        watcher = signal_when(supervisor, lambda: len(seen) == 1, signal.SIGTERM)
        assert supervisor.run() == 0
    watcher.join(5)
    assert handle.get() == 42
    assert supervisor.stopping and not supervisor.terminating
    assert not q.is_locked('left-by-a-dead-consumer')
    text = caplog.text
    assert 'flushed task locks: left-by-a-dead-consumer' in text
    assert 'graceful shutdown (SIGTERM)' in text


def test_the_startup_log_lists_registered_and_periodic_tasks(caplog):
    from queue_core import crontab
    q, double, seen = make_queue()
    q.periodic_task(crontab(minute='0', hour='3'))(lambda: None)
    supervisor = Supervisor(q, ConsumerConfig(workers=1, worker_type='thread', periodic=False))
    with caplog.at_level('INFO', logger='queue_core.consumer'):
        watcher = signal_when(supervisor, lambda: 'periodic tasks:' in caplog.text,
                              signal.SIGINT)
        assert supervisor.run() == 0
    watcher.join(5)
    lines = [r.getMessage() for r in caplog.records]
    assert '%s' % double.registry_name in [l for l in lines
                                            if l.startswith('registered tasks:')][0]
    periodic = [l for l in lines if l.startswith('periodic tasks:')][0]
    assert '<lambda>' in periodic and periodic.endswith('(not enqueued: -n)')


def test_a_consumer_waits_for_its_own_enqueue_replies_asleep(redis_url):
    q = TaskQueue('spin', storage=redis_url)
    seen: list = []
    q.signal(SIGNAL_COMPLETE)(lambda sig, task: seen.append(task.id))

    @q.task(retries=1)
    def flaky(attempt=[]):
        attempt.append(1)
        if len(attempt) == 1:
            raise ValueError('once')  # its retry is the consumer's own enqueue

    assert q.storage.enqueue_spin > 0  # a producer's enqueue waits actively
    handle = flaky()
    supervisor = Supervisor(q, ConsumerConfig(workers=1, worker_type='thread', lease=3,
                                              periodic=False))
    watcher = interrupt_when(supervisor, lambda: seen == [handle.id])
    assert supervisor.run() == 0
    watcher.join(5)
    assert q.storage.enqueue_spin == 0.0
    q.flush()
