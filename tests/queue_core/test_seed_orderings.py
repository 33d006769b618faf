"""Every ordering and example of the seed's signal document, on each storage, driven both
as a worker drives it (dequeue/execute with a controlled clock) and in immediate mode."""
from __future__ import annotations

import datetime
import logging

import pytest

from queue_core import (SIGNAL_COMPLETE, SIGNAL_ENQUEUED, SIGNAL_ERROR, SIGNAL_EXECUTING,
                        SIGNAL_INTERRUPTED, SIGNAL_RATE_LIMITED, SIGNAL_RETRYING,
                        SIGNAL_REVOKED, SIGNAL_SCHEDULED, TaskException, TaskQueue, group)

from tests.helpers import SignalRecorder, execute_next, run_schedule


E, X, C, ERR = SIGNAL_ENQUEUED, SIGNAL_EXECUTING, SIGNAL_COMPLETE, SIGNAL_ERROR
RETRY, SCHED = SIGNAL_RETRYING, SIGNAL_SCHEDULED


@pytest.fixture
def q(storage_url):
    queue = TaskQueue('seed', storage=storage_url)
    yield queue
    queue.flush()


@pytest.fixture(params=['worker', 'immediate'])
def mode(request, q):
    if request.param == 'immediate':
        q.immediate = True
    return request.param


def later(seconds: float) -> datetime.datetime:
    return datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds)


def drain(q, timestamp=None):
    """Run every queued task (including those they enqueue)."""
    while q.pending_count():
        execute_next(q, timestamp)


def test_successful_task_enqueued_executing_complete_with_result_readable(q, mode):
    rec = SignalRecorder(q)
    seen_at_complete = []

    @q.task()
    def add(a, b):
        return a + b

    @q.signal(SIGNAL_COMPLETE)
    def on_complete(signal, task):
        seen_at_complete.append(q.result(task.id, preserve=True))

    result = add(1, 2)
    drain(q)
    assert rec.signals(result.id) == [E, X, C]
    assert seen_at_complete == [3]
    assert result.get(blocking=True, timeout=5) == 3


def test_pipeline_next_step_enqueued_after_complete(q, mode):
    rec = SignalRecorder(q)

    @q.task()
    def add(a, b):
        return a + b

    pipeline = add.s(1, 2).then(add, 10)
    results = q.enqueue(pipeline)
    drain(q)
    first, second = results
    assert rec.events[:4] == [(E, first.id), (X, first.id), (C, first.id), (E, second.id)]
    assert rec.signals(second.id) == [E, X, C]
    assert results.get() == [3, 13]


def test_failure_with_retry_delay_error_retrying_scheduled_then_runs_again(q, mode):
    rec = SignalRecorder(q)
    attempts = []

    @q.task(retries=2, retry_delay=10)
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError('uh-oh')
        return 'OK'

    result = flaky()
    if mode == 'worker':
        execute_next(q)
    assert rec.signals(result.id) == [E, X, ERR, RETRY, SCHED]
    assert isinstance(rec.exceptions[0], ValueError)
    with pytest.raises(TaskException) as info:
        result.get(blocking=True, timeout=5)
    assert info.value.metadata['error'] == "ValueError('uh-oh')"
    assert str(info.value) == "ValueError('uh-oh')"
    if mode == 'immediate':
        return  # immediate mode stops at SCHEDULED, as in Huey
    assert q.scheduled_count() == 1
    assert run_schedule(q, later(5)) == 0
    assert run_schedule(q, later(11)) == 1
    execute_next(q, later(11))
    assert rec.signals(result.id) == [E, X, ERR, RETRY, SCHED, E, X, C]
    result.reset()
    assert result.get(blocking=True, timeout=5) == 'OK'


def test_failure_with_retry_and_no_delay_is_enqueued_again(q, mode):
    rec = SignalRecorder(q)
    attempts = []

    @q.task(retries=1)
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError('once')
        return 'fine'

    result = flaky()
    drain(q)
    assert rec.signals(result.id) == [E, X, ERR, RETRY, E, X, C]
    assert rec.retries == [1, 1, 1, 1, 0, 0, 0]


def test_failure_without_retry_ends_at_error(q, mode):
    rec = SignalRecorder(q)

    @q.task()
    def boom():
        raise RuntimeError('no')

    result = boom()
    drain(q)
    assert rec.signals(result.id) == [E, X, ERR]
    with pytest.raises(TaskException):
        result.get()


def test_scheduled_task_signals_and_runs_when_due(q, mode):
    rec = SignalRecorder(q)

    @q.task()
    def add(a, b):
        return a + b

    result = add.schedule((2, 3), delay=10)
    drain(q)
    assert rec.signals(result.id) == [E, SCHED]
    if mode == 'immediate':
        return
    assert run_schedule(q, later(11)) == 1
    drain(q, later(11))
    assert rec.signals(result.id) == [E, SCHED, E, X, C]
    assert result(True) == 5


def test_revoked_task_enqueued_then_revoked_and_nothing_else(q, mode):
    rec = SignalRecorder(q)

    @q.task()
    def add(a, b):
        return a + b

    add.revoke()
    result = add(1, 2)
    drain(q)
    assert rec.signals(result.id) == [E, SIGNAL_REVOKED]
    assert result.get() is None


def test_rate_limited_task_is_rescheduled_for_next_window(q, mode):
    rec = SignalRecorder(q)
    limit = q.rate_limit('one-per-hour', 1, 3600)

    @q.task(retries=0)
    @limit
    def limited():
        return 'ran'

    first = limited()
    drain(q)
    second = limited()
    drain(q)
    assert rec.signals(first.id) == [E, X, C]
    assert rec.signals(second.id) == [E, X, SIGNAL_RATE_LIMITED, RETRY, SCHED]
    assert q.scheduled()[0].retries == 0


def test_chord_members_complete_then_callback_enqueued_and_executed(q, mode):
    rec = SignalRecorder(q)

    @q.task()
    def square(n):
        return n * n

    @q.task()
    def total(values):
        return sum(values)

    handle = q.enqueue(group([square.s(1), square.s(2), square.s(3)]).then(total))
    drain(q)
    member_ids = [r.id for r in handle.results]
    cb = handle.id
    for mid in member_ids:
        assert rec.signals(mid) == [E, X, C]
    assert rec.signals(cb) == [E, X, C]
    order = [tid for sig, tid in rec.events]
    last_member_complete = max(i for i, ev in enumerate(rec.events)
                               if ev[0] == C and ev[1] in member_ids)
    assert order.index(cb) > last_member_complete
    assert handle.get() == 14


def test_interrupted_handler_re_enqueues_task(q, mode):
    rec = SignalRecorder(q)
    calls = []

    @q.task()
    def sometimes_interrupted():
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return 'done'

    @q.signal(SIGNAL_INTERRUPTED)
    def on_interrupted(signal, task, *args, **kwargs):
        q.enqueue(task)

    if mode == 'immediate':
        with pytest.raises(KeyboardInterrupt):
            sometimes_interrupted()
        assert rec.signals()[:3] == [E, X, SIGNAL_INTERRUPTED]
        return
    result = sometimes_interrupted()
    with pytest.raises(KeyboardInterrupt):
        execute_next(q)
    drain(q)
    assert rec.signals(result.id) == [E, X, SIGNAL_INTERRUPTED, E, X, C]
    assert result.get() == 'done'


def test_broken_handler_is_logged_and_changes_nothing(q, mode, caplog):
    done = []

    @q.task()
    def add(a, b):
        return a + b

    @q.signal(SIGNAL_COMPLETE)
    def broken_handler(signal, task):
        raise ValueError('oops')

    @q.signal(SIGNAL_COMPLETE)
    def working_handler(signal, task):
        done.append(task.id)

    with caplog.at_level(logging.ERROR, logger='queue_core'):
        first, second = add(1, 2), add(3, 4)
        drain(q)
    assert done == [first.id, second.id]
    assert first.get() == 3 and second.get() == 7
    broken = [r for r in caplog.records if 'broken_handler' in r.getMessage()]
    assert len(broken) == 2
    assert all(r.levelno == logging.ERROR and r.exc_info for r in broken)


def test_seed_immediate_mode_example(storage_url):
    huey = TaskQueue('imm', storage=storage_url)

    @huey.task()
    def add(a, b):
        return a + b

    huey.immediate = True
    state = []

    @huey.signal(SIGNAL_COMPLETE)
    def on_complete(signal, task):
        state.append(task.id)

    result = add(1, 2)
    assert len(state) == 1
    assert state[0] == result.id
    assert result.get() == 3


def test_disconnect_signal_all_and_one(q):
    seen = []

    @q.signal(SIGNAL_ERROR, SIGNAL_COMPLETE)
    def handler(signal, task, exc=None):
        seen.append(signal)

    @q.task()
    def add(a, b):
        return a + b

    q.disconnect_signal(handler, SIGNAL_COMPLETE)
    add(1, 2)
    drain(q)
    assert seen == []
    q.disconnect_signal(handler)
    assert not q._emitter.handlers.has_handlers()
