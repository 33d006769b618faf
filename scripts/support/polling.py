"""Polling a condition with a deadline."""
from __future__ import annotations

import time
from typing import Any, Callable


def poll(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy
    (returned) or ``timeout`` seconds pass (``None``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01,
               message: str = 'condition',
               error: type[Exception] = AssertionError) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise ``error`` (a failed
    test by default) naming ``message`` after ``timeout`` seconds."""
    value = poll(predicate, timeout, interval)
    if not value:
        raise error('timed out after %.1fs waiting for %s' % (timeout, message))
    return value
