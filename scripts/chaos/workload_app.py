"""The application the campaign's consumer runs: ``queue-consumer scripts.chaos.workload_app.queue``.

Storage comes from ``CHAOS_STORAGE``. Every execution appends a ``start`` line and, when it
returns, an ``end`` line to the file named by ``CHAOS_EXEC_LOG`` (one ``write`` on an
``O_APPEND`` descriptor per line, so lines from several processes never interleave and a
killed process leaves whole lines), which is how the campaign counts executions.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

from queue_core import TaskQueue

queue = TaskQueue('chaos', storage=os.environ.get('CHAOS_STORAGE', 'memory://'))


def record(kind: str, task: Any) -> None:
    """Append one execution line (``start`` or ``end``) for ``task``."""
    path = os.environ.get('CHAOS_EXEC_LOG')
    if not path:
        return
    line = json.dumps({'k': kind, 'id': task.id, 'retries': task.retries, 'tseq': task.tseq,
                       'pid': os.getpid(), 't': time.time()}) + '\n'
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@queue.task(context=True)
def ok(n: int, task: Any = None) -> int:
    """Succeeds at once."""
    record('start', task)
    record('end', task)
    return n * 2


@queue.task(retries=2, context=True)
def flaky(n: int, fail_times: int, task: Any = None) -> int:
    """Fails its first ``fail_times`` attempts (with 2 retries: 3 or more is for good)."""
    record('start', task)
    attempt = 2 - task.retries
    if attempt < fail_times:
        record('end', task)
        raise ValueError('chaos: planned failure %d of %d' % (attempt + 1, fail_times))
    record('end', task)
    return n


@queue.task(context=True)
def slow(seconds: float, task: Any = None) -> float:
    """Takes ``seconds`` (in short sleeps, so an interrupt lands promptly)."""
    record('start', task)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    record('end', task)
    return seconds
