"""The app the browser tests run under a real consumer: one task that succeeds, one that
fails. Its storage comes from ``QUEUE_STORAGE``."""
from __future__ import annotations

import os

from queue_core import TaskQueue

q = TaskQueue('pages', storage=os.environ['QUEUE_STORAGE'])


@q.task()
def add(a, b):
    """Succeeds."""
    return a + b


@q.task()
def broken():
    """Always fails."""
    raise RuntimeError('this task always fails')
