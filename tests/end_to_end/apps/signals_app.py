"""A small task app for the consumer's end-to-end tests.

Storage comes from ``QUEUE_STORAGE`` (tests in the same process swap ``q.storage``).
Every signal is appended as one JSON line to the file named by ``QUEUE_SIGNAL_FILE``,
with one ``write`` on an ``O_APPEND`` descriptor, so lines from several worker
processes never interleave. ``QUEUE_REENQUEUE_INTERRUPTED=1`` installs the seed's
re-enqueue handler for ``SIGNAL_INTERRUPTED``.
"""
from __future__ import annotations

import json
import os
import time

from queue_core import SIGNAL_INTERRUPTED, TaskQueue, crontab

q = TaskQueue('e2e', storage=os.environ.get('QUEUE_STORAGE', 'memory://'))


def append_line(row: dict) -> None:
    """Append one JSON line to the signal file with a single ``write``."""
    path = os.environ.get('QUEUE_SIGNAL_FILE')
    if not path:
        return
    row = dict({'id': '', 'name': '', 'pid': os.getpid(), 'source': q.source,
                'final': False, 'retries': 0}, **row)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(row) + '\n').encode())
    finally:
        os.close(fd)


@q.signal()
def record_signal(signal, task, *extra):
    """Append ``{signal, id, name, pid, source, final, retries}`` to the signal file."""
    append_line({'signal': signal, 'id': task.id, 'name': task.name, 'final': task.final,
                 'retries': task.retries})


@q.on_startup()
def record_startup():
    """Each worker records that its startup hooks ran."""
    append_line({'signal': '_startup'})


@q.on_shutdown()
def record_shutdown():
    """Each worker records that its shutdown hooks ran."""
    append_line({'signal': '_shutdown'})


if os.environ.get('QUEUE_REENQUEUE_INTERRUPTED') == '1':
    @q.signal(SIGNAL_INTERRUPTED)
    def on_interrupted(signal, task, *args, **kwargs):
        """The seed's handler: the consumer was shut down mid-task; re-enqueue it."""
        q.enqueue(task)


def first_time(key: str) -> bool:
    """True only the first time any process asks about ``key`` (a storage-wide flag)."""
    return q.storage.put_if_empty('e2e-first:' + key, b'1')


@q.task()
def add(a, b):
    """Succeeds."""
    return a + b


@q.task(retries=1)
def fail_once(key):
    """Fails on its first attempt, succeeds on the retry (queued again at once)."""
    if first_time(key):
        raise ValueError('first attempt of %s fails' % key)
    return 'ok'


@q.task(retries=1, retry_delay=1)
def fail_once_delayed(key):
    """Fails on its first attempt; the retry waits on the schedule for a second."""
    if first_time(key):
        raise ValueError('first attempt of %s fails' % key)
    return 'ok'


@q.task()
def always_fails():
    """Fails with no retry."""
    raise ValueError('always fails')


@q.task()
def limited():
    """One run per window; a second run is rate-limited and rescheduled for the next.

    The window is 10**9 seconds long (the next one opens in 2033), so the two runs of a
    test never straddle a window boundary."""
    with q.rate_limit('e2e-limited', 1, 10 ** 9):
        return 'ran'


@q.task()
def total(values):
    """A chord callback."""
    return sum(values)


@q.task()
def slow_once(key, seconds=60.0):
    """The first run blocks (up to ``seconds``) until interrupted; later runs return.

    Once inside, the first run records ``{"signal": "_running", "id": key}`` so tests
    signal the consumer only when the task is really running.
    """
    if first_time(key):
        append_line({'signal': '_running', 'id': key})
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
        return 'slow'
    return 'fast'


@q.task()
def sleep_for(seconds):
    """Sleeps, then returns ``seconds``."""
    time.sleep(seconds)
    return seconds


@q.task(timeout=0.5)
def too_slow():
    """Runs past its 0.5 s timeout."""
    time.sleep(30)


@q.task()
def never_runs():
    """Revoked by the tests before it is called."""
    return 'ran anyway'


@q.task()
@q.lock_task('e2e-exclusive')
def exclusive():
    """Runs only while it holds the ``e2e-exclusive`` lock."""
    return 'alone'


if os.environ.get('QUEUE_PERIODIC') == '1':
    @q.periodic_task(crontab(minute='*'))
    def every_minute():
        """A periodic task for every minute (only when ``QUEUE_PERIODIC=1``)."""
        return 'tick'


@q.task()
def gated(gate, name, seconds=60.0):
    """Records ``{"signal": "_running", "id": name}``, then waits (up to ``seconds``) until
    the test opens ``gate`` (puts the key ``gate:<gate>``); returns ``name``."""
    append_line({'signal': '_running', 'id': name})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not q.storage.has_data_for_key('gate:' + gate):
        time.sleep(0.02)
    return name


if os.environ.get('QUEUE_CRASH_ON_START') == '1':
    @q.on_startup()
    def crash_on_start():
        """Every worker dies as it starts (only when ``QUEUE_CRASH_ON_START=1``)."""
        raise SystemExit(3)
