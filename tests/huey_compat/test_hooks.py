"""Hooks as in Huey: a pre_execute hook that raises is logged and the task still runs."""
from __future__ import annotations

from tests.helpers import SignalRecorder, execute_next


def test_pre_execute_hook_error_is_logged_and_the_task_runs(huey, caplog):
    rec = SignalRecorder(huey)
    later = []

    @huey.pre_execute()
    def broken(task):
        raise RuntimeError('hook failed')

    @huey.pre_execute()
    def after(task):
        later.append(task.id)

    @huey.task()
    def work():
        return 'ran'

    handle = work()
    assert execute_next(huey) == 'ran'
    assert rec.signals(handle.id) == ['enqueued', 'executing', 'complete']
    assert later == [handle.id]
    assert 'broken' in caplog.text and 'hook failed' in caplog.text
