"""Storage failures at the worst moments, injected into a real memory storage: a claim
whose reply is lost, an enqueue that fails after the schedule was read."""
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

    def claim(self, owner, lease_until, **options):
        record = super().claim(owner, lease_until, **options)
        if record is not None and not self.lost:
            self.lost = True
            raise StorageError('connection reset while reading the reply')
        return record


class FailsOneEnqueue(MemoryStorage):
    """The first enqueue fails (nothing is written)."""

    failed = False

    def enqueue(self, data, priority=0):
        if not self.failed:
            self.failed = True
            raise StorageError('connection refused')
        super().enqueue(data, priority)


def queue_on(storage):
    q = TaskQueue('outage', storage=storage)
    seen = []
    q.signal()(lambda sig, task, *extra: seen.append((sig, q.source)))

    @q.task()
    def work():
        return 'done'

    return q, work, seen


def test_a_claim_whose_reply_was_lost_is_recovered_and_requeued():
    q, work, seen = queue_on(LosesOneClaimReply())
    handle = work()
    worker = Worker(q, ConsumerConfig(max_tasks=1, **FAST), 'host:1:lost')
    worker.loop()
    assert handle.get() == 'done'
    assert seen == [('enqueued', 'app'), ('interrupted', 'consumer'), ('enqueued', 'consumer'),
                    ('executing', 'worker'), ('complete', 'worker')]
    assert q.in_flight() == []


def test_scheduler_keeps_due_tasks_it_could_not_enqueue_and_retries_them():
    storage = FailsOneEnqueue()
    storage.failed = True  # let the application's own enqueue through
    q, work, seen = queue_on(storage)
    now = datetime.datetime(2030, 5, 6, 7, 8, 9)
    work.schedule(eta=now - datetime.timedelta(seconds=1))
    q.execute(q.dequeue(), timestamp=now - datetime.timedelta(seconds=5))  # -> schedule
    assert q.scheduled_count() == 1
    storage.failed = False
    scheduler = Scheduler(q, ConsumerConfig(**FAST), now=lambda: now)
    try:
        scheduler.tick()
    except StorageError:
        pass
    else:
        raise AssertionError('the first enqueue should have failed')
    assert q.scheduled_count() == 0 and q.pending_count() == 0  # held by the scheduler
    scheduler.tick()
    assert q.pending_count() == 1
    assert seen[-1] == ('enqueued', 'scheduler')
