"""The scheduler, driven in-process with an injected clock."""
from __future__ import annotations

import datetime

from queue_core import SIGNAL_ENQUEUED, TaskQueue, crontab
from queue_core.consumer.config import ConsumerConfig
from queue_core.consumer.scheduler import Scheduler, periodic_guard_key

T0 = datetime.datetime(2030, 1, 2, 3, 4, 5)


class Clock:
    """A settable ``now``."""

    def __init__(self, now: datetime.datetime) -> None:
        self.value = now

    def __call__(self) -> datetime.datetime:
        return self.value


def make_queue(storage: str, runs: list | None = None) -> TaskQueue:
    """A queue with one periodic task every even minute and one ordinary task."""
    q = TaskQueue('sched', storage=storage)

    @q.periodic_task(crontab(minute='*/2'))
    def every_other_minute():
        return 'tick'

    @q.task()
    def later(x):
        return x

    q.later = later
    if runs is not None:
        q.signal(SIGNAL_ENQUEUED)(lambda sig, task: runs.append((task.name, q.source)))
    return q


def test_periodic_task_is_enqueued_once_per_matching_minute_across_two_schedulers(redis_url):
    clock = Clock(T0.replace(minute=4, second=1))
    runs_a: list = []
    runs_b: list = []
    a = Scheduler(make_queue(redis_url, runs_a), ConsumerConfig(), now=clock)
    b = Scheduler(make_queue(redis_url, runs_b), ConsumerConfig(), now=clock)
    for second in (1, 20, 59):  # minute 04 matches */2: once, whoever ticks first
        clock.value = clock.value.replace(second=second)
        b.tick()
        a.tick()
    assert len(runs_a) + len(runs_b) == 1
    clock.value = T0.replace(minute=5, second=0)  # minute 05 does not match
    a.tick()
    b.tick()
    assert len(runs_a) + len(runs_b) == 1
    clock.value = T0.replace(minute=6, second=30)
    a.tick()
    b.tick()
    assert runs_a + runs_b == [('every_other_minute', 'scheduler')] * 2
    assert a.queue.pending_count() == 2
    assert a.queue.storage.has_data_for_key(
        periodic_guard_key(a.queue.pending()[0], T0.replace(minute=6, second=0)))


def test_periodic_tasks_are_skipped_with_no_periodic(redis_url):
    clock = Clock(T0.replace(minute=8))
    scheduler = Scheduler(make_queue(redis_url), ConsumerConfig(periodic=False), now=clock)
    scheduler.tick()
    assert scheduler.queue.pending_count() == 0


def test_due_scheduled_task_is_enqueued_by_the_scheduler(sqlite_url):
    runs: list = []
    q = make_queue(sqlite_url, runs)
    clock = Clock(T0.replace(minute=1))
    scheduler = Scheduler(q, ConsumerConfig(periodic=False), now=clock)
    handle = q.later.schedule((7,), eta=T0.replace(minute=3))
    q.execute(q.dequeue(), timestamp=clock.value)  # not ready: goes on the schedule
    assert q.scheduled_count() == 1
    scheduler.tick()
    assert q.pending_count() == 0
    clock.value = T0.replace(minute=3)
    scheduler.tick()
    assert q.scheduled_count() == 0 and q.pending_count() == 1
    assert runs[-1] == ('later', 'scheduler')
    assert q.pending()[0].id == handle.id
