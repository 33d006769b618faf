"""Storage failures at the worst moments, injected into a real memory storage: a claim
whose reply is lost, a move of a due task whose reply is lost."""
from __future__ import annotations

import datetime

from queue_core import TaskQueue
from queue_core.consumer import ConsumerConfig, Scheduler
from queue_core.consumer.worker import Worker
from queue_core.exceptions import StorageError
from queue_core.storage.memory import MemoryStorage

FAST = dict(backoff_initial=0.001, backoff_max=0.01, poll_interval=0.05, periodic=False)


class LosesOneClaimReply(MemoryStorage):
    """Records the first claim in flight, then raises as if the reply never came back."""

    lost = False

    def claim_many(self, owner, lease_until, limit, **options):
        records = super().claim_many(owner, lease_until, limit, **options)
        if records and not self.lost:
            self.lost = True
            raise StorageError('connection reset while reading the reply')
        return records


class LosesOneMoveReply(MemoryStorage):
    """The first move of a due task to the queue happens, then raises as if its reply
    never came back."""

    lost = False

    def move_to_queue(self, ref, data, priority=0):
        moved = super().move_to_queue(ref, data, priority)
        if not self.lost:
            self.lost = True
            raise StorageError('connection reset while reading the reply')
        return moved


def queue_on(storage):
    q = TaskQueue('outage', storage=storage)
    seen = []
    q.signal()(lambda sig, task, *extra: seen.append((sig, q.source)))

    @q.task()
    def work():
        return 'done'

    return q, work, seen


def test_a_claim_whose_reply_was_lost_is_handed_back_unstarted_in_order():
    q, work, seen = queue_on(LosesOneClaimReply())
    handles = [work() for _ in range(3)]
    worker = Worker(q, ConsumerConfig(max_tasks=3, prefetch=2, **FAST), 'host:1:lost')
    worker.loop()
    assert [h.get() for h in handles] == ['done'] * 3
    # Never started, so no INTERRUPTED: back at the head, then run in queue order.
    assert seen == [('enqueued', 'app')] * 3 + [('executing', 'worker'),
                                                ('complete', 'worker')] * 3
    assert q.in_flight() == []


def test_a_due_task_whose_move_reply_was_lost_is_on_the_queue_once():
    storage = LosesOneMoveReply()
    q, work, seen = queue_on(storage)
    now = datetime.datetime(2030, 5, 6, 7, 8, 9)
    work.schedule(eta=now - datetime.timedelta(seconds=1))
    q.execute(q.dequeue(), timestamp=now - datetime.timedelta(seconds=5))  # -> schedule
    assert q.scheduled_count() == 1
    scheduler = Scheduler(q, ConsumerConfig(**FAST), now=lambda: now)
    try:
        scheduler.tick()
    except StorageError:
        pass
    else:
        raise AssertionError('the first move should have lost its reply')
    scheduler.tick()  # nothing left to move: the first move happened, once
    assert q.scheduled_count() == 0 and q.pending_count() == 1


class NeverReleases(MemoryStorage):
    """The storage is gone for releases."""

    def release(self, token):
        raise StorageError('connection refused')


def test_a_graceful_stop_gives_up_releasing_through_an_outage(monkeypatch):
    from queue_core.consumer import worker as worker_module
    monkeypatch.setattr(worker_module, 'STOP_RELEASE_PATIENCE', 0.2)
    q, work, seen = queue_on(NeverReleases())
    work()
    worker = Worker(q, ConsumerConfig(max_tasks=1, **FAST), 'host:1:stopping')
    worker.stop.set()
    worker._release('some-token')  # returns (logged) instead of retrying for ever
    assert worker.stop.is_set() and not worker.halt.is_set()
