"""Stored failures as in Huey: repr() of the exception, an overridable
build_error_result, store_intermediate_errors, nested TaskException pass-through."""
from __future__ import annotations

import pytest

from queue_core.huey import MemoryHuey
from queue_core.huey.exceptions import TaskException

from tests.helpers import SignalRecorder, execute_next


class TestError(Exception):
    __test__ = False  # a task's exception, not a test class


def test_stored_error_is_the_repr_of_the_exception_as_raised(huey):
    @huey.task()
    def fail(n):
        raise TestError(n)

    handle = fail(0)
    execute_next(huey)
    with pytest.raises(TaskException) as info:
        handle.get()
    assert info.value.metadata['error'] == 'TestError(0)'
    assert str(info.value) == 'TestError(0)'
    assert set(info.value.metadata) >= {'error', 'traceback', 'retries', 'task_id'}


def test_build_error_result_can_be_overridden():
    class Custom(MemoryHuey):
        def build_error_result(self, task, exc):
            data = super().build_error_result(task, exc)
            data['kind'] = type(exc).__name__
            return data

    huey = Custom('custom')

    @huey.task()
    def fail():
        raise KeyError('k')

    handle = fail()
    execute_next(huey)
    with pytest.raises(TaskException) as info:
        handle.get()
    assert info.value.metadata['kind'] == 'KeyError'


def test_intermediate_errors_withheld_until_retries_are_spent():
    huey = MemoryHuey('withheld', store_intermediate_errors=False)
    ran = []

    @huey.task()
    def on_error(exc):
        ran.append(repr(exc))

    @huey.task(retries=1)
    def fail():
        raise TestError('again')

    handle = huey.enqueue(fail.s().error(on_error))
    execute_next(huey)  # first attempt: nothing stored, no error callback
    assert handle.get() is None and huey.pending_count() == 1
    execute_next(huey)  # the retry fails for good
    execute_next(huey)  # its error callback
    # The exception reaches the callback as data (msgpack), with the original's repr.
    assert ran == ["TestError('again')"]
    with pytest.raises(TaskException):
        handle.get()


def test_intermediate_errors_stored_by_default(huey):
    @huey.task(retries=1)
    def fail():
        raise TestError('first')

    handle = fail()
    execute_next(huey)
    with pytest.raises(TaskException) as info:
        handle.get()
    assert info.value.metadata['retries'] == 1


def test_task_exception_from_a_nested_result_read_passes_through_with_inner_error(huey):
    rec = SignalRecorder(huey)

    @huey.task()
    def inner():
        raise TestError('deep')

    @huey.task()
    def outer(task_id):
        return huey.result(task_id)

    first = inner()
    execute_next(huey)
    second = outer(first.id)
    execute_next(huey)
    with pytest.raises(TaskException) as info:
        second.get()
    assert info.value.metadata['error'] == "TestError('deep')"
    assert rec.signals(second.id)[-1] == 'error'
