"""Result handles as in Huey: is_ready, get_raw_result, .task, revoke/restore through the
handle, and blocking reads that leave nothing behind in the result store."""
from __future__ import annotations

import pytest

from queue_core import ResultTimeout, TaskQueue
from queue_core.huey import Error
from queue_core.huey.exceptions import TaskException

from tests.helpers import execute_next


def test_is_ready_turns_true_once_the_result_is_stored(huey):
    @huey.task()
    def add(a, b):
        return a + b

    handle = add(1, 2)
    assert not handle.is_ready()
    execute_next(huey)
    assert handle.is_ready()
    assert huey.result_count() == 0  # read into the handle, as in Huey
    assert handle.get() == 3 and handle() == 3


def test_get_raw_result_returns_the_error_value_without_raising(huey):
    @huey.task()
    def fail():
        raise ValueError('nope')

    handle = fail()
    execute_next(huey)
    raw = handle.get_raw_result()
    assert isinstance(raw, Error) and raw.metadata['error'] == "ValueError('nope')"
    with pytest.raises(TaskException):
        handle.get()


def test_handle_task_is_the_enqueued_task(huey):
    @huey.task()
    def add(a, b):
        return a + b

    handle = add(2, 3)
    assert handle.task.id == handle.id and handle.task.args == (2, 3)


def test_revoke_and_restore_through_the_handle(huey):
    @huey.task()
    def add(a, b):
        return a + b

    handle = add(1, 1)
    handle.revoke()
    assert handle.is_revoked()
    assert handle.restore()
    assert not handle.is_revoked()
    assert execute_next(huey) == 2


def test_handle_sees_a_revocation_of_its_whole_task_function(huey):
    @huey.task()
    def add(a, b):
        return a + b

    handle = add(1, 1)
    add.revoke()
    assert handle.is_revoked()
    add.restore()
    assert not handle.is_revoked()


@pytest.mark.parametrize('succeed', [True, False])
def test_blocking_read_leaves_no_sentinel_behind(storage_url, succeed):
    q = TaskQueue('sentinel', storage=storage_url)

    @q.task()
    def value():
        return 'v'

    handle = value()
    if succeed:
        q.execute(q.dequeue())
        assert handle.get(blocking=True, timeout=5) == 'v'
    else:
        with pytest.raises(ResultTimeout):
            handle.get(blocking=True, timeout=0.2)
    assert q.result_count() == 0
    assert q.all_results() == {}
    q.flush()


def test_result_group_get_is_non_blocking_and_as_completed_yields_each_value(huey):
    @huey.task()
    def square(n):
        return n * n

    group = square.map([1, 2, 3])
    assert group.get() == [None, None, None]
    for _ in range(3):
        execute_next(huey)
    assert sorted(group.as_completed(timeout=5)) == [1, 4, 9]


def test_indexing_a_group_waits_for_that_value(huey):
    @huey.task()
    def square(n):
        return n * n

    group = square.map([2, 3])
    execute_next(huey)
    execute_next(huey)
    assert group[1] == 9 and [r.get() for r in group] == [4, 9]


def test_a_handle_for_a_bare_task_id(huey):
    from queue_core.huey.api import Result, Task
    handle = Result(huey, Task(id='no-such-task'))
    with pytest.raises(ResultTimeout):
        handle.get(blocking=True, timeout=0.1)
