"""Cancellation, retries and rate limits as in Huey 3.5.4 (SPEC §7's final-events table)."""
from __future__ import annotations

import datetime

import pytest

from queue_core.huey import CancelExecution, RetryTask
from queue_core.huey.exceptions import RateLimitExceeded, TaskException

from tests.helpers import SignalRecorder, execute_next, run_schedule


E, X, C, CAN, RT, S = 'enqueued', 'executing', 'complete', 'canceled', 'retrying', 'scheduled'


def test_cancel_inside_a_task_stores_the_error_and_ends_without_retries(huey):
    rec = SignalRecorder(huey)

    @huey.task()
    def work():
        raise CancelExecution('stop')

    handle = work()
    execute_next(huey)
    assert rec.signals(handle.id) == [E, X, CAN]
    assert rec.tasks[-1].final
    with pytest.raises(TaskException) as info:
        handle.get()
    assert info.value.metadata['error'] == "CancelExecution('stop')"


def test_cancel_inside_a_task_with_retries_left_and_retry_none_is_retried(huey):
    rec = SignalRecorder(huey)

    @huey.task(retries=1)
    def work():
        raise CancelExecution()

    handle = work()
    execute_next(huey)
    assert rec.signals(handle.id) == [E, X, CAN, RT, E]
    execute_next(huey)
    assert rec.signals(handle.id) == [E, X, CAN, RT, E, X, CAN]
    assert rec.retries[-1] == 0


def test_cancel_inside_a_task_with_retry_false_ends_despite_retries(huey):
    rec = SignalRecorder(huey)

    @huey.task(retries=3)
    def work():
        raise CancelExecution(retry=False)

    handle = work()
    execute_next(huey)
    assert rec.signals(handle.id) == [E, X, CAN]
    assert huey.pending_count() == 0


def test_cancel_inside_a_task_with_retry_true_is_retried_without_retries(huey):
    rec = SignalRecorder(huey)
    calls = []

    @huey.task()
    def work():
        calls.append(1)
        if len(calls) == 1:
            raise CancelExecution(retry=True)
        return 'second'

    handle = work()
    execute_next(huey)
    execute_next(huey)
    assert rec.signals(handle.id) == [E, X, CAN, RT, E, X, C]
    assert handle.get() == 'second'


def test_pre_execute_cancel_stores_nothing_and_does_not_retry(huey):
    rec = SignalRecorder(huey)

    @huey.pre_execute()
    def veto(task):
        raise CancelExecution()

    @huey.task(retries=2)
    def work():
        return 'never'

    handle = work()
    execute_next(huey)
    assert rec.signals(handle.id) == [E, X, CAN]
    assert handle.get() is None and huey.pending_count() == 0


@pytest.mark.parametrize('option', ['delay', 'eta'])
def test_retry_task_with_delay_or_eta_is_scheduled_not_enqueued(huey, option):
    rec = SignalRecorder(huey)
    now = huey.now()
    due = now + datetime.timedelta(seconds=30)

    @huey.task()
    def work():
        if option == 'delay':
            raise RetryTask(delay=30)
        raise RetryTask(eta=due)

    handle = work()
    execute_next(huey, now)
    assert rec.signals(handle.id) == [E, X, RT, S]
    assert huey.scheduled()[0].eta == pytest.approx(due, abs=datetime.timedelta(seconds=1))
    assert huey.read_schedule(now) == []
    assert [t.id for t in huey.read_schedule(due)] == [handle.id]


def test_rate_limited_retry_is_scheduled_for_the_next_window(huey):
    rec = SignalRecorder(huey)
    limit = huey.rate_limit('one-per-hour', 1, 3600)

    @huey.task()
    @limit
    def work():
        return 'ran'

    work()
    handle = work()
    execute_next(huey)
    execute_next(huey)
    assert rec.signals(handle.id) == [E, X, 'rate-limited', RT, S]
    assert rec.retries[-1] == 0  # no retry spent
    later = huey.now() + datetime.timedelta(hours=2)
    assert run_schedule(huey, later) == 1


def test_rate_limit_acquire_reset_and_exception_attributes(huey):
    limit = huey.rate_limit('api', 2, 60)
    limit.acquire()
    limit.acquire()
    with pytest.raises(RateLimitExceeded) as info:
        limit.acquire()
    exc = info.value
    assert exc.key == 'api' and exc.retry is True and 0 < exc.delay <= 60
    assert 'Rate limit exceeded on "api"' in str(exc)
    limit.reset()
    limit.acquire()
    direct = RateLimitExceeded('key', 1.5, retry=False)
    assert (direct.key, direct.delay, direct.retry) == ('key', 1.5, False)


def test_rate_limit_accepts_huey_limits_and_refuses_nonsense(huey):
    never = huey.rate_limit('closed', 0, 1)
    with pytest.raises(RateLimitExceeded):
        never.acquire()
    huey.rate_limit('fractional', 5, 0.5).acquire()
    for limit, per in ((-1, 1), (1, 0), ('x', 1)):
        with pytest.raises(ValueError):
            huey.rate_limit('bad', limit, per)


def test_chord_gets_error_for_a_member_canceled_inside_and_skipped_for_a_hook_cancel(huey):
    from queue_core.huey import SKIPPED, Error, chord

    @huey.pre_execute()
    def veto(task):
        if task.args == ('veto',):
            raise CancelExecution()

    @huey.task()
    def member(mode):
        if mode == 'cancel':
            raise CancelExecution('inside')
        return mode

    @huey.task()
    def collect(values):
        return [v if isinstance(v, str) else 'error' if isinstance(v, Error)
                else 'skipped' if v is SKIPPED else repr(v) for v in values]

    handle = huey.enqueue(chord([member.s('ok'), member.s('cancel'), member.s('veto')],
                                collect))
    while huey.pending_count():
        execute_next(huey)
    assert handle() == ['ok', 'error', 'skipped']
