"""The demo's tasks: a queue on the embedded SQLite default (``demo.db`` in the current
directory), and a few tasks that walk through the signal orderings."""
from __future__ import annotations

from queue_core import TaskQueue

huey = TaskQueue('demo')


@huey.task()
def add(a, b):
    """Succeeds: ENQUEUED, EXECUTING, COMPLETE."""
    return a + b


@huey.task(retries=2, retry_delay=2, context=True)
def flaky(task=None):
    """Fails on its first attempt, then succeeds after a 2-second retry delay."""
    if task.retries == 2:
        raise ValueError('uh-oh')
    return 'OK'


@huey.task()
def broken():
    """Always fails, with no retries: ENQUEUED, EXECUTING, ERROR."""
    raise RuntimeError('this task always fails')


@huey.task()
def total(values):
    """A chord callback: the sum of its members' results."""
    return sum(values)
