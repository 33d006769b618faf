"""Prefetch in a worker: tasks held behind a long one go back to the head of the queue,
and a stopping worker hands back what it never started, in order and without a signal."""
from __future__ import annotations

import threading
import time

from queue_core import TaskQueue
from queue_core.consumer import ConsumerConfig
from queue_core.consumer.held import REVOCATIONS_FRESH
from queue_core.consumer.worker import Worker
from queue_core.storage.memory import MemoryStorage

from scripts.support.polling import wait_until


FAST = dict(backoff_initial=0.001, backoff_max=0.01, poll_interval=0.05, periodic=False)


def gated_queue():
    q = TaskQueue('prefetch', storage=MemoryStorage())
    gate, started = threading.Event(), threading.Event()
    seen = []
    q.signal()(lambda sig, task, *extra: seen.append((sig, task.id)))

    @q.task()
    def long():
        started.set()
        assert gate.wait(30)
        return 'long'

    @q.task()
    def short(n):
        return n

    return q, long, short, gate, started, seen


def start(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_tasks_held_behind_a_long_task_go_back_to_the_head_of_the_queue():
    q, long, short, gate, started, seen = gated_queue()
    slow = long()
    rest = [short(n) for n in range(3)]
    worker = Worker(q, ConsumerConfig(prefetch=4, prefetch_hold=0.05, **FAST), 'host:1:a')
    thread = start(worker)
    try:
        assert started.wait(10)
        wait_until(lambda: q.pending_count() == 3, 10,
                   message='the held tasks to be handed back')
        assert [t.id for t in q.pending()] == [h.id for h in rest]
        assert [row['id'] for row in q.in_flight()] == [slow.id]
        assert [sig for sig, task_id in seen if task_id != slow.id] == ['enqueued'] * 3
    finally:
        gate.set()
        wait_until(lambda: q.pending_count() == 0 and not q.in_flight(), 10,
                   message='the rest to run')
        worker.stop.set()
        thread.join(10)
    assert slow.get() == 'long' and [h.get() for h in rest] == [0, 1, 2]
    assert not any(sig == 'interrupted' for sig, _ in seen)


def test_a_stopping_worker_hands_back_unstarted_tasks_in_order_without_a_signal():
    q, long, short, gate, started, seen = gated_queue()
    slow = long()
    rest = [short(n) for n in range(3)]
    worker = Worker(q, ConsumerConfig(prefetch=4, prefetch_hold=300.0, **FAST), 'host:1:b')
    thread = start(worker)
    assert started.wait(10)
    assert q.pending_count() == 0 and len(q.in_flight()) == 4  # all four in hand
    later = short(99)
    worker.stop.set()  # graceful: the running task finishes, nothing new starts
    gate.set()
    thread.join(10)
    assert not thread.is_alive()
    assert slow.get() == 'long'
    assert [t.id for t in q.pending()] == [h.id for h in rest] + [later.id]
    assert q.in_flight() == []
    assert [sig for sig, task_id in seen if task_id != slow.id] == ['enqueued'] * 4


def test_a_dead_workers_records_are_sorted_by_what_its_progress_file_says():
    from queue_core.consumer.progress import Progress, forget, progress_path, read_position
    from queue_core.consumer.recovery import sort_by_progress
    from queue_core.storage.base import InFlight, new_tokens

    owner = 'host:1:progress-test'
    records = [InFlight(token, owner, 0.0, b'') for token in new_tokens(4)]
    a, b = records[0].token, records[1].token
    progress = Progress(owner)
    try:
        assert read_position(owner).state == 0  # nothing started yet: none ran
        assert sort_by_progress(records, read_position(owner)) == ([], [], records)
        progress.started(a)
        progress.finished(a)
        progress.started(b)
        assert sort_by_progress(reversed(records), read_position(owner)) == (
            records[:1], records[1:2], records[2:])
        progress.finished(b)
        assert sort_by_progress(records, read_position(owner)) == (
            records[:2], [], records[2:])
        with open(progress_path(owner), 'r+b') as handle:  # killed in mid-write
            handle.write(b'\x01')
        assert read_position(owner) is None
        assert sort_by_progress(records, None) == ([], records, [])  # all count as started
    finally:
        progress.remove()
        forget(owner)
    assert read_position(owner) is None


def test_a_task_revoked_while_it_waits_in_a_workers_hand_does_not_run():
    q, long, short, gate, started, seen = gated_queue()
    slow = long()
    victim = short(1)
    worker = Worker(q, ConsumerConfig(prefetch=4, prefetch_hold=300.0, **FAST), 'host:1:c')
    thread = start(worker)
    try:
        assert started.wait(10)
        assert q.pending_count() == 0  # the victim is in the worker's hand
        # Revoked once the count read with the claim is stale (REVOCATIONS_FRESH).
        wait_until(lambda: time.monotonic() - worker._held._filled_at > REVOCATIONS_FRESH,
                   10, message='the claim to age')
        victim.revoke()
        gate.set()
        wait_until(lambda: ('revoked', victim.id) in seen, 10,
                   message='the held task to be found revoked')
    finally:
        gate.set()
        worker.stop.set()
        thread.join(10)
    assert slow.get() == 'long'
    assert ('executing', victim.id) not in seen
