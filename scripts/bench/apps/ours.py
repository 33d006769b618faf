"""The benchmark application for queue_core: one no-op task on Redis.

``queue-consumer apps.ours.queue`` reads the Redis URL from ``BENCH_REDIS_URL``; the
benchmark process itself calls ``build(url)`` to get the queue and its task.
"""
from __future__ import annotations

import os
from typing import Any

from queue_core import TaskQueue


def noop(n: int = 0) -> bool:
    """Does nothing and returns True, so that a result is stored (as in Huey)."""
    return True


def build(url: str) -> tuple[TaskQueue, Any]:
    """A queue named ``bench`` on ``url`` and its ``noop`` task wrapper."""
    queue = TaskQueue('bench', storage=url)
    return queue, queue.task()(noop)


def __getattr__(name: str) -> Any:
    # The consumer asks for ``queue``; it is built on first use, not at import.
    if name == 'queue':
        queue, _ = build(os.environ['BENCH_REDIS_URL'])
        globals()['queue'] = queue
        return queue
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
