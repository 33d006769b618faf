"""Retrying storage calls through an outage: log, wait (doubling, capped), try again."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, TypeVar

from ..exceptions import StorageError

T = TypeVar('T')
logger = logging.getLogger('queue_core.consumer')


class StopFlag:
    """A stop request that a signal handler may set safely.

    ``threading.Event.set`` takes a lock, so calling it from a signal handler that
    interrupted ``Event.wait`` in the same thread could deadlock; a plain attribute cannot.
    ``shared`` (a ``multiprocessing.Value`` made before the fork) lets the supervisor
    raise the flag in every worker process at once, before it signals any of them.
    """

    def __init__(self, shared: Any = None) -> None:
        self._set = False
        self._shared = shared

    def set(self) -> None:
        """Request the stop."""
        self._set = True

    def is_set(self) -> bool:
        """Whether a stop was requested (here or through the shared value)."""
        if not self._set and self._shared is not None and self._shared.value:
            self._set = True
        return self._set

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, returning early (``True``) once the stop is set."""
        deadline = time.monotonic() + timeout
        while not self.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(0.05, remaining))
        return self.is_set()


class DeadlineFlag(StopFlag):
    """``base``, or set by itself once ``seconds`` have passed: bounds a retry loop."""

    def __init__(self, base: StopFlag, seconds: float) -> None:
        super().__init__()
        self.base = base
        self.deadline = time.monotonic() + seconds

    def is_set(self) -> bool:
        """Whether ``base`` is set or the time is up."""
        return self.base.is_set() or time.monotonic() >= self.deadline


class Backoff:
    """Delays for consecutive storage failures: ``initial`` growing by ``factor`` (doubling
    by default) up to ``maximum``.

    ``wait()`` sleeps on ``stop`` so a shutdown request cuts the wait short; it returns
    whether the caller should carry on (``False`` once ``stop`` is set).
    """

    def __init__(self, stop: StopFlag, initial: float = 0.1,
                 maximum: float = 5.0, factor: float = 2.0) -> None:
        self.stop = stop
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.failures = 0

    @property
    def delay(self) -> float:
        """The wait before the next attempt."""
        if self.failures == 0:
            return 0.0
        return min(self.maximum, self.initial * (self.factor ** (self.failures - 1)))

    def failed(self, what: str, exc: BaseException) -> bool:
        """Record one failure, log it, wait; return whether to try again."""
        self.failures += 1
        log = logger.warning if self.failures == 1 else logger.debug
        log('storage unavailable while %s (%s); retrying in %.1fs', what, exc, self.delay)
        return not self.stop.wait(self.delay)

    def succeeded(self) -> None:
        """Reset after a call that worked, logging the recovery once."""
        if self.failures:
            logger.warning('storage is reachable again after %d failed attempt(s)',
                           self.failures)
        self.failures = 0

    def call(self, what: str, func: Callable[[], T]) -> tuple[bool, T | None]:
        """Call ``func`` until it does not raise ``StorageError`` or ``stop`` is set.

        Returns ``(True, value)`` on success, ``(False, None)`` when stopped first.
        """
        while True:
            try:
                value = func()
            except StorageError as exc:
                if not self.failed(what, exc):
                    return False, None
                continue
            self.succeeded()
            return True, value
