"""The exception tree of ``queue_core``; ``QueueError`` is its root."""
from __future__ import annotations

import datetime
from typing import Any


class QueueError(Exception):
    """Root of every error ``queue_core`` raises on its own account."""


class ConfigurationError(QueueError):
    """The queue or consumer was configured with something that cannot work."""


class SerializationError(QueueError, TypeError):
    """A value could not be serialized (raised in the caller, at enqueue)."""


class StorageError(QueueError):
    """The storage failed to carry out an operation."""


class TaskException(QueueError):
    """Raised when reading the result of a task that failed.

    ``metadata`` holds ``error`` (the ``repr`` of the exception), ``traceback``,
    ``retries`` and ``task_id``.
    """

    def __init__(self, metadata: dict[str, Any] | None = None, *args: Any) -> None:
        self.metadata = metadata or {}
        super().__init__(*args)

    def __str__(self) -> str:
        return str(self.metadata.get('error', 'unknown error'))


class TaskLocked(QueueError):
    """Raised inside a task when the lock it needs is held by another task."""


class RateLimitExceeded(QueueError):
    """Raised inside a task when its rate limit is used up for the current window.

    Built as in Huey, ``RateLimitExceeded(key, delay, retry=True)``: ``key`` names the
    limit, ``delay`` is the number of seconds until the next window opens, ``retry`` says
    whether the task is rescheduled for that window without spending a retry.
    """

    def __init__(self, key: str | None = None, delay: float | None = None,
                 retry: bool = True) -> None:
        self.key, self.delay, self.retry = key, delay, retry
        super().__init__(key, delay, retry)

    def __str__(self) -> str:
        if self.retry and self.delay is not None:
            return 'Rate limit exceeded on "%s", retry in %0.1fs' % (self.key, self.delay)
        return 'Rate limit exceeded on "%s"' % (self.key,)


class TaskTimeout(QueueError):
    """Raised when a task runs past its ``timeout``."""


class ResultTimeout(QueueError):
    """A blocking result read reached its timeout before the result was ready."""


class CancelExecution(QueueError):
    """Raised by a pre-execute hook or a task to cancel it.

    ``retry=True`` asks for a retry; ``None`` retries only when the task has retries left.
    """

    def __init__(self, msg: str | None = None, retry: bool | None = None,
                 *args: Any) -> None:
        self.retry = retry
        super().__init__(*((msg,) + args if msg is not None else args))


class RetryTask(QueueError):
    """Raised by a task to be retried without an ERROR signal or spending a retry."""

    def __init__(self, msg: str | None = None, eta: datetime.datetime | None = None,
                 delay: float | datetime.timedelta | None = None) -> None:
        super().__init__(*((msg,) if msg is not None else ()))
        self.eta = eta
        self.delay = delay


# Huey's names for the same classes, so an ``except`` written for Huey catches ours.
HueyException = QueueError
TaskLockedException = TaskLocked
