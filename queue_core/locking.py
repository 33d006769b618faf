"""Task locks and fixed-window rate limits, both usable as context managers and decorators."""
from __future__ import annotations

import functools
import math
import time
from typing import TYPE_CHECKING, Any, Callable

from .exceptions import RateLimitExceeded, TaskLocked

if TYPE_CHECKING:  # pragma: no cover
    from .api import TaskQueue

LOCK_PREFIX = 'lock.'
RATE_PREFIX = 'rate.'


class _Guard:
    """A context manager that can also decorate a function."""

    def __enter__(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def __exit__(self, *exc_info: Any) -> None:
        pass

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)
        return guarded


class TaskLock(_Guard):
    """An exclusive lock named ``name``; entering it while held raises ``TaskLocked``.

    ``ttl`` (seconds) lets a lock expire if its holder dies without releasing it.
    """

    def __init__(self, queue: 'TaskQueue', name: str, ttl: float | None = None) -> None:
        self.queue = queue
        self.name = name
        self.ttl = ttl
        self.key = LOCK_PREFIX + name

    def __enter__(self) -> 'TaskLock':
        self.acquire()
        return self

    def acquire(self) -> bool:
        """Take the lock or raise ``TaskLocked``; returns ``True``."""
        if not self.queue.storage.put_if_empty(self.key, b'1', self.ttl):
            raise TaskLocked('unable to acquire lock %s' % self.name)
        return True

    def __exit__(self, *exc_info: Any) -> None:
        self.queue.storage.delete_data(self.key)

    def is_locked(self) -> bool:
        """Whether the lock is held right now."""
        return self.queue.storage.has_data_for_key(self.key)

    def clear(self) -> bool:
        """Release the lock whoever holds it; returns whether it was held."""
        return self.queue.storage.delete_data(self.key)

    release = clear
    locked = is_locked


class RateLimit(_Guard):
    """At most ``limit`` entries per ``per`` seconds, in fixed windows aligned to the clock
    (``floor(now / per)``). Past the limit, entering raises ``RateLimitExceeded`` carrying
    the seconds until the next window and ``retry``.
    """

    def __init__(self, queue: 'TaskQueue', name: str, limit: int, per: float,
                 retry: bool = True, clock: Callable[[], float] = time.time) -> None:
        # As in Huey: any whole limit from 0 (every entry refused) and any positive period.
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError('rate limit %r: limit must be a whole number >= 0, not %r'
                             % (name, limit))
        if isinstance(per, bool) or not isinstance(per, (int, float)) or per <= 0:
            raise ValueError('rate limit %r: per must be a number of seconds > 0, not %r'
                             % (name, per))
        self.queue = queue
        self.name = name
        self.limit = limit
        self.per = per
        self.retry = retry
        self.clock = clock

    def __enter__(self) -> 'RateLimit':
        self.acquire()
        return self

    def _key(self, now: float) -> tuple[str, int]:
        window = math.floor(now / self.per)
        return '%s%s.%d' % (RATE_PREFIX, self.name, window), window

    def acquire(self, now: float | None = None) -> None:
        """Count one entry in the current window; raise ``RateLimitExceeded(name, delay,
        retry)`` if the window is used up."""
        now = self.clock() if now is None else now
        key, window = self._key(now)
        count = self.queue.storage.incr(key, 1, ttl=self.per * 2 + 1)
        if count > self.limit:
            raise RateLimitExceeded(self.name, (window + 1) * self.per - now, self.retry)

    def current_usage(self, now: float | None = None) -> int:
        """How many entries the current window has counted."""
        key, _ = self._key(self.clock() if now is None else now)
        return self.queue.storage.incr(key, 0, ttl=self.per * 2 + 1)

    def reset(self, now: float | None = None) -> None:
        """Forget the entries counted in the current window."""
        key, _ = self._key(self.clock() if now is None else now)
        used = self.queue.storage.incr(key, 0, ttl=self.per * 2 + 1)
        if used:
            self.queue.storage.incr(key, -used, ttl=self.per * 2 + 1)
