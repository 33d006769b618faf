"""Pipelines, groups and chords as in Huey 3.5.4."""
from __future__ import annotations

import pytest

from queue_core.huey import Error, chord, group
from queue_core.huey.exceptions import TaskException

from tests.helpers import execute_next


@pytest.fixture
def tasks(huey):
    """``ident``, ``add`` and ``agg`` tasks on the fixture's queue."""
    @huey.task()
    def ident(v):
        return v

    @huey.task()
    def add(a, b):
        return a + b

    @huey.task()
    def agg(values):
        return sum(v for v in values if not isinstance(v, Error))

    return ident, add, agg


def drain(huey):
    """Run every queued task; the last value."""
    value = None
    while huey.pending_count():
        value = execute_next(huey)
    return value


def test_group_callback_gets_results_after_its_own_arguments(huey, tasks):
    ident, _, _ = tasks

    @huey.task()
    def cb(prefix, results, suffix=None):
        return [prefix, results, suffix]

    handle = huey.enqueue(group([ident.s('a'), ident.s('b')]).then(cb.s(), 'p', suffix='s'))
    assert drain(huey) == ['p', ['a', 'b'], 's']
    assert handle() == ['p', ['a', 'b'], 's']


def test_group_error_adds_the_callback_to_every_member_and_chains(huey, tasks):
    ident, _, agg = tasks
    errors = []

    @huey.task()
    def fail_neg(n):
        if n < 0:
            raise ValueError(n)
        return n

    @huey.task()
    def on_err(exc):
        errors.append(exc)

    handle = huey.enqueue(group([fail_neg.s(1), fail_neg.s(-1)]).error(on_err).then(agg))
    drain(huey)
    assert len(errors) == 1
    assert handle() == 1


def test_chord_then_and_pipeline_results(huey, tasks):
    ident, add, agg = tasks
    handle = huey.enqueue(chord([ident.s(1), ident.s(2)], agg).then(add, 10))
    execute_next(huey)
    execute_next(huey)
    assert execute_next(huey) == 3
    assert handle.pipeline_results() == [3, None]
    assert execute_next(huey) == 13
    assert handle() == 3
    assert handle.results() == [1, 2]
    assert handle.pipeline_results() == [3, 13]


def test_chord_without_pipeline_has_no_pipeline_results(huey, tasks):
    ident, _, agg = tasks
    handle = huey.enqueue(chord([ident.s(1)], agg))
    assert handle.pipeline_results is None


def test_chord_error_callback_runs_when_the_callback_fails(huey, tasks):
    ident, _, _ = tasks
    seen = []

    @huey.task()
    def broken(values):
        raise RuntimeError('cb')

    @huey.task()
    def on_err(exc):
        seen.append(str(exc))

    handle = huey.enqueue(chord([ident.s(1)], broken).error(on_err))
    drain(huey)
    assert seen == ['cb']
    with pytest.raises(TaskException):
        handle.get()


def test_empty_chord_runs_its_callback_with_an_empty_list_each_time(huey, tasks):
    _, _, agg = tasks

    @huey.task()
    def show(values, tag='t'):
        return [values, tag]

    empty = chord([], show)
    for _ in range(2):
        handle = huey.enqueue(empty)
        assert execute_next(huey) == [[], 't']
        assert handle() == [[], 't']


def test_nested_chords_deliver_nested_results(huey, tasks):
    ident, _, _ = tasks

    @huey.task()
    def collect(values):
        return values

    inner = chord([ident.s('c'), ident.s('d')], collect)
    handle = huey.enqueue(chord([chord([ident.s('a'), ident.s('b')], collect), inner,
                                 ident.s('e')], collect))
    drain(huey)
    assert handle() == [['a', 'b'], ['c', 'd'], 'e']


def test_chord_member_pipeline_reports_its_tail(huey, tasks):
    ident, add, _ = tasks

    @huey.task()
    def collect(values):
        return values

    handle = huey.enqueue(chord([ident.s(1).then(add, 100), ident.s(2)], collect))
    drain(huey)
    assert handle() == [101, 2]


def test_nested_chord_with_pipelined_callback_reports_the_pipeline_tail(huey, tasks):
    ident, _, agg = tasks

    @huey.task()
    def times_100(n):
        return n * 100

    @huey.task()
    def collect(values):
        return values

    inner = chord([ident.s(1), ident.s(2)], agg.s().then(times_100))
    handle = huey.enqueue(chord([inner, ident.s(99)], collect))
    drain(huey)
    assert handle() == [300, 99]


def test_chord_member_pipeline_failing_hands_an_error_to_the_callback(huey, tasks):
    ident, _, _ = tasks

    @huey.task()
    def fail(n):
        raise ValueError(n)

    @huey.task()
    def collect(values):
        return [type(v).__name__ for v in values]

    handle = huey.enqueue(chord([ident.s(1).then(fail), fail.s(2).then(ident)], collect))
    drain(huey)
    assert handle() == ['Error', 'Error']


def test_pipeline_of_task_instances_with_their_own_arguments(huey, tasks):
    ident, add, _ = tasks

    @huey.task()
    def three(a, b, c):
        return [a, b, c]

    pipe = ident.s(1).then(add.s(), 2).then(three.s('x'), 'y')
    results = huey.enqueue(pipe)
    drain(huey)
    assert results.get() == [1, 3, ['x', 'y', 3]]


def test_dict_result_fills_only_keywords_not_given(huey):
    @huey.task()
    def make():
        return {'a': 1, 'b': 2}

    @huey.task()
    def show(a=None, b=None):
        return [a, b]

    results = huey.enqueue(make.s().then(show, b='given'))
    drain(huey)
    assert results.get() == [{'a': 1, 'b': 2}, [1, 'given']]


def test_error_callback_in_a_chain_runs_after_each_failed_attempt(huey):
    seen = []

    @huey.task(retries=1)
    def flaky():
        raise ValueError('flaky')

    @huey.task()
    def on_err(exc):
        seen.append(str(exc))

    @huey.task()
    def after(value):
        return value

    results = huey.enqueue(flaky.s().error(on_err).then(after))
    drain(huey)
    assert seen == ['flaky', 'flaky']
    with pytest.raises(TaskException):
        results[1]  # noqa: B018 - indexing waits for the value, as in Huey
