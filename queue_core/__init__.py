"""queue_core: a Huey-compatible task queue whose lifecycle signals can travel.

``TaskQueue`` is the entry point; the thirteen ``SIGNAL_*`` constants name the signals.
"""
from .api import TaskQueue
from .canvas import chord, group
from .crontab import crontab
from .exceptions import (CancelExecution, ConfigurationError, QueueError, RateLimitExceeded,
                         ResultTimeout, RetryTask, SerializationError, StorageError,
                         TaskException, TaskLocked, TaskTimeout)
from .quarantine import MalformedTask
from .signals import (SIGNAL_CANCELED, SIGNAL_COMPLETE, SIGNAL_ENQUEUED, SIGNAL_ERROR,
                      SIGNAL_EXECUTING, SIGNAL_EXPIRED, SIGNAL_INTERRUPTED, SIGNAL_LOCKED,
                      SIGNAL_RATE_LIMITED, SIGNAL_RETRYING, SIGNAL_REVOKED, SIGNAL_SCHEDULED,
                      SIGNAL_TIMEOUT)
from .values import SKIPPED, Error

__all__ = [
    'TaskQueue', 'crontab', 'chord', 'group', 'Error', 'SKIPPED',
    'SIGNAL_ENQUEUED', 'SIGNAL_EXECUTING', 'SIGNAL_COMPLETE', 'SIGNAL_ERROR',
    'SIGNAL_CANCELED', 'SIGNAL_RETRYING', 'SIGNAL_SCHEDULED', 'SIGNAL_REVOKED',
    'SIGNAL_EXPIRED', 'SIGNAL_LOCKED', 'SIGNAL_TIMEOUT', 'SIGNAL_RATE_LIMITED',
    'SIGNAL_INTERRUPTED',
    'QueueError', 'ConfigurationError', 'SerializationError', 'StorageError',
    'TaskException', 'TaskLocked', 'RateLimitExceeded', 'TaskTimeout', 'ResultTimeout',
    'CancelExecution', 'RetryTask', 'MalformedTask',
]
