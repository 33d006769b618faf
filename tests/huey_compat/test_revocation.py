"""Revocation as in Huey: revoke_once, revoke_until, is_revoked(timestamp, peek),
TaskQueue.revoke(task), periodic tasks."""
from __future__ import annotations

import datetime

from queue_core.huey import crontab

from tests.helpers import SignalRecorder, execute_next


def test_revoke_once_is_consumed_by_the_first_check(huey):
    @huey.task()
    def inc(n):
        return n + 1

    results = [inc(i) for i in (1, 2, 3)]
    inc.revoke(revoke_once=True)
    assert inc.is_revoked() and all(r.is_revoked() for r in results)
    for _ in results:
        execute_next(huey)
        assert not inc.is_revoked()
    assert [r.get() for r in results] == [None, 3, 4]


def test_is_revoked_with_timestamp_and_consuming_check(huey):
    @huey.task()
    def inc(n):
        return n + 1

    cutoff = datetime.datetime(2000, 1, 1)
    second = datetime.timedelta(seconds=1)
    inc.revoke(revoke_until=cutoff)
    assert inc.is_revoked(timestamp=cutoff - second, peek=True)
    assert not inc.is_revoked(timestamp=cutoff, peek=True)
    handles = [inc(i) for i in (1, 2, 3, 4)]
    for delta in (-second, datetime.timedelta(0), second, -second):
        huey.execute(huey.dequeue(), cutoff + delta)
    # The run at the cutoff cleared the lapsed revocation, so the last one runs too.
    assert [h.get() for h in handles] == [None, 3, 4, 5]


def test_is_revoked_peek_false_consumes_revoke_once(huey):
    @huey.task()
    def inc(n):
        return n + 1

    inc.revoke(revoke_once=True)
    assert inc.is_revoked(peek=True)
    assert inc.is_revoked(peek=False)
    assert not inc.is_revoked()


def test_queue_revoke_and_restore_a_task_instance(huey):
    rec = SignalRecorder(huey)

    @huey.task()
    def inc(n):
        return n + 1

    task = inc.s(1)
    huey.revoke(task)
    assert huey.is_revoked(task)
    huey.enqueue(task)
    execute_next(huey)
    assert rec.signals(task.id) == ['enqueued', 'revoked']
    assert huey.restore(task)
    assert huey.restore(task) is False


def test_revoking_a_periodic_task(huey):
    state = []

    @huey.periodic_task(crontab(minute='0'))
    def tick():
        state.append(1)

    tick.revoke()
    assert tick.is_revoked() and tick.is_revoked()
    assert tick.restore() and not tick.is_revoked() and not tick.restore()
    tick.revoke(revoke_once=True)
    tick()
    execute_next(huey)
    assert state == [] and not tick.is_revoked()
    cutoff = datetime.datetime(2000, 1, 1)
    tick.revoke(revoke_until=cutoff)
    assert tick.is_revoked(timestamp=cutoff - datetime.timedelta(seconds=1))
    assert not tick.is_revoked(timestamp=cutoff)


def test_handle_revoke_is_once_by_default_and_persistent_when_asked(huey):
    ran = []

    @huey.task()
    def work(n):
        ran.append(n)
        return n

    once, kept, free = work(1), work(2), work(3)
    once.revoke()
    kept.revoke(revoke_once=False)
    assert huey.is_revoked(once) and huey.is_revoked(once.id) and not huey.is_revoked(free)
    for _ in range(3):
        execute_next(huey)
    assert ran == [3] and not once.is_revoked() and kept.is_revoked()
    huey.enqueue(once.task)
    huey.enqueue(kept.task)
    assert execute_next(huey) == 1
    assert execute_next(huey) is None
    assert ran == [3, 1]


def test_handle_is_revoked_takes_timestamp_and_peek(huey):
    @huey.task()
    def inc(n):
        return n + 1

    handle = inc(1)
    cutoff = datetime.datetime(2000, 1, 1)
    huey.revoke_by_id(handle.id, revoke_until=cutoff)
    assert handle.is_revoked(timestamp=cutoff - datetime.timedelta(seconds=1))
    assert not handle.is_revoked(timestamp=cutoff, peek=False)  # lapsed: cleared
    assert not huey.restore_by_id(handle.id)
