"""Each branch of the execution lifecycle (SPEC §2), driven as a worker drives it."""
from __future__ import annotations

import datetime

import pytest

from queue_core import (SIGNAL_CANCELED, SIGNAL_COMPLETE, SIGNAL_ENQUEUED, SIGNAL_ERROR,
                        SIGNAL_EXECUTING, SIGNAL_EXPIRED, SIGNAL_LOCKED, SIGNAL_RATE_LIMITED,
                        SIGNAL_RETRYING, SIGNAL_REVOKED, SIGNAL_SCHEDULED, SIGNAL_TIMEOUT,
                        SKIPPED, CancelExecution, Error, RetryTask, TaskException, TaskQueue,
                        crontab, group)

from tests.helpers import SignalRecorder, execute_next, run_schedule


E, X, C, ERR = SIGNAL_ENQUEUED, SIGNAL_EXECUTING, SIGNAL_COMPLETE, SIGNAL_ERROR


@pytest.fixture
def q():
    return TaskQueue('life', storage='memory://')


def at(seconds: float) -> datetime.datetime:
    return datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds)


def drain(q, timestamp=None):
    while q.pending_count():
        execute_next(q, timestamp)


def test_revoke_once_skips_only_the_next_execution(q):
    rec = SignalRecorder(q)

    @q.task()
    def work(n):
        return n

    first = work(1)
    first.revoke(revoke_once=True)
    assert first.is_revoked()
    drain(q)
    assert rec.signals(first.id) == [E, SIGNAL_REVOKED]
    assert not first.is_revoked()
    q.enqueue(first.task)
    drain(q)
    assert rec.signals(first.id)[-2:] == [X, C]


def test_revoke_until_expires(q):
    rec = SignalRecorder(q)

    @q.task()
    def work(n):
        return n

    work.revoke(revoke_until=at(60))
    a = work(1)
    execute_next(q)
    b = work(2)
    execute_next(q, at(120))
    assert rec.signals(a.id) == [E, SIGNAL_REVOKED]
    assert rec.signals(b.id) == [E, X, C]
    # As in Huey, the execution that found the revocation lapsed cleared it.
    assert not work.restore()
    assert not work.is_revoked()


def test_expired_task_is_not_run_and_expiry_is_not_extended_by_retries(q):
    rec = SignalRecorder(q)

    @q.task(expires=30, retries=3)
    def work():
        raise ValueError('x')

    res = work()
    task = q.pending()[0]
    assert task.expires_at is not None
    execute_next(q)  # fails, retried at once, keeps the same expiry
    retried = q.pending()[0]
    assert retried.expires_at == task.expires_at
    execute_next(q, at(60))
    assert rec.signals(res.id) == [E, X, ERR, SIGNAL_RETRYING, E, SIGNAL_EXPIRED]


def test_cancel_in_pre_execute_hook_stores_nothing(q):
    rec = SignalRecorder(q)

    @q.pre_execute()
    def gate(task):
        raise CancelExecution()

    @q.task(retries=2)
    def work():
        return 1

    res = work()
    drain(q)
    assert rec.signals(res.id) == [E, X, SIGNAL_CANCELED]
    assert res.get() is None
    assert q.unregister_pre_execute('gate')
    assert not q.unregister_pre_execute('gate')


def test_cancel_in_task_with_retry_true_retries(q):
    rec = SignalRecorder(q)
    calls = []

    @q.task()
    def work():
        calls.append(1)
        if len(calls) == 1:
            raise CancelExecution(retry=True)
        return 'ok'

    res = work()
    drain(q)
    assert rec.signals(res.id) == [E, X, SIGNAL_CANCELED, SIGNAL_RETRYING, E, X, C]
    assert res.get() == 'ok'


def test_timeout_via_check_timeout_emits_timeout_and_stores_error(q):
    rec = SignalRecorder(q)

    @q.task(context=True, timeout=0.001)
    def slow(task=None):
        import time
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            task.check_timeout()
        return 'never'

    res = slow()
    drain(q)
    assert rec.signals(res.id) == [E, X, SIGNAL_TIMEOUT]
    with pytest.raises(TaskException) as info:
        res.get()
    assert 'TaskTimeout' in info.value.metadata['error']


def test_rate_limited_without_retry_uses_retries_then_stores_error(q):
    rec = SignalRecorder(q)
    limit = q.rate_limit('strict', 1, 3600, retry=False)

    @q.task(retries=1)
    def work():
        with limit:
            return 'ran'

    work()
    drain(q)
    res = work()
    drain(q)
    # As in Huey 3.5.4, the retry waits for the limit's next window: it is scheduled.
    later = q.now() + datetime.timedelta(hours=2)
    assert run_schedule(q, later) == 1
    drain(q, later)
    assert rec.signals(res.id) == [E, X, SIGNAL_RATE_LIMITED, SIGNAL_RETRYING,
                                   SIGNAL_SCHEDULED, E, X, SIGNAL_RATE_LIMITED]
    with pytest.raises(TaskException):
        res.get()


def test_locked_task_emits_locked_and_stores_error_only_when_final(q):
    rec = SignalRecorder(q)
    lock = q.lock_task('exclusive')

    @q.task(retries=1)
    @lock
    def work():
        return 'ran'

    with lock:
        assert q.is_locked('exclusive')
        res = work()
        execute_next(q)
        assert q.result_count() == 1  # only the lock itself, no error stored yet
        execute_next(q)
    assert rec.signals(res.id) == [E, X, SIGNAL_LOCKED, SIGNAL_RETRYING, E, X, SIGNAL_LOCKED]
    with pytest.raises(TaskException):
        res.get()
    assert not q.is_locked('exclusive')
    with lock:
        assert q.flush_locks() == {'exclusive'}


def test_retry_task_spends_no_retry_and_emits_no_error(q):
    rec = SignalRecorder(q)
    calls = []

    @q.task()
    def work():
        calls.append(1)
        if len(calls) == 1:
            raise RetryTask(delay=5)
        return 'ok'

    res = work()
    execute_next(q)
    assert rec.signals(res.id) == [E, X, SIGNAL_RETRYING, SIGNAL_SCHEDULED]
    run_schedule(q, at(10))
    drain(q, at(10))
    assert rec.signals(res.id)[-3:] == [E, X, C]
    assert res.get() == 'ok'


def test_retry_delay_grows_by_backoff(q):
    etas = []

    @q.task(retries=3, retry_delay=10, retry_backoff=2)
    def work():
        raise ValueError('always')

    @q.signal(SIGNAL_SCHEDULED)
    def scheduled(signal, task):
        etas.append(task.eta)

    work()
    now = datetime.datetime(2030, 1, 1)
    starts = [now]
    execute_next(q, now)
    for _ in range(2):
        task = q.read_schedule(datetime.datetime(2031, 1, 1))[0]
        starts.append(task.eta)
        q.execute(task, task.eta)
    assert [(eta - start).total_seconds() for eta, start in zip(etas, starts)] == [10, 20, 40]


def test_pipeline_failure_marks_later_steps_failed(q):
    @q.task()
    def step(n):
        if n == 2:
            raise ValueError('bad step')
        return n + 1

    results = q.enqueue(step.s(1).then(step).then(step))
    drain(q)
    first, second, third = results
    assert first.get() == 2
    with pytest.raises(TaskException) as failed:
        second.get()
    with pytest.raises(TaskException) as info:
        third.get()
    # As in Huey, a later step holds the failed step's own error (naming that task).
    assert info.value.metadata['task_id'] == second.id
    assert info.value.metadata['error'] == failed.value.metadata['error'] == \
        "ValueError('bad step')"


def test_pipeline_spreads_tuples_and_dicts(q):
    @q.task()
    def pair(a, b):
        return (a, b)

    @q.task()
    def keywords(a, b):
        return {'x': a + b}

    @q.task()
    def show(x):
        return x

    results = q.enqueue(pair.s(1, 2).then(keywords).then(show))
    drain(q)
    assert results.get() == [(1, 2), {'x': 3}, 3]


def test_on_error_runs_after_each_failed_attempt(q):
    seen = []

    @q.task()
    def report(exc):
        seen.append(type(exc).__name__)

    @q.task(retries=1)
    def fails():
        raise KeyError('k')

    q.enqueue(fails.s().error(report))
    drain(q)
    assert seen == ['KeyError', 'KeyError']


def test_chord_with_failing_revoked_and_nested_members(q):
    @q.task()
    def value(n):
        if n < 0:
            raise ValueError('negative')
        return n

    @q.task()
    def collect(values):
        return values

    skipped = value.s(5)
    inner = group([value.s(1), value.s(2)]).then(collect)
    handle = q.enqueue(group([value.s(3), value.s(-1), skipped, inner]).then(collect))
    q.revoke_by_id(skipped.id)
    drain(q)
    out = handle.get()
    assert out[0] == 3
    assert isinstance(out[1], Error) and 'negative' in out[1].metadata['error']
    assert out[2] is SKIPPED
    assert out[3] == [1, 2]


def test_empty_chord_runs_callback_with_empty_list(q):
    @q.task()
    def collect(values):
        return ['got', values]

    handle = q.enqueue(group([]).then(collect))
    drain(q)
    assert handle.get() == ['got', []]


def test_periodic_task_matches_crontab_and_stores_no_result(q):
    @q.periodic_task(crontab(minute='*/15', hour='9-17'))
    def tick():
        return 'tick'

    assert [t.name for t in q.read_periodic(datetime.datetime(2030, 1, 7, 9, 30))] == ['tick']
    assert q.read_periodic(datetime.datetime(2030, 1, 7, 9, 31)) == []
    assert q.read_periodic(datetime.datetime(2030, 1, 7, 18, 0)) == []
    q.enqueue(q.read_periodic(datetime.datetime(2030, 1, 7, 9, 0))[0])
    drain(q)
    assert q.result_count() == 0


def test_priority_orders_queue(q):
    @q.task()
    def work(n):
        return n

    work(1)
    work(2, priority=10)
    work(3, priority=5)
    assert [t.args[0] for t in q.pending()] == [2, 3, 1]
