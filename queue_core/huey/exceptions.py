"""Huey's exception names, as the very classes ``queue_core`` raises.

``HueyException`` is ``queue_core.QueueError`` and ``TaskLockedException`` is
``queue_core.TaskLocked``: an ``except`` clause written for Huey catches ours."""
from ..exceptions import (CancelExecution, ConfigurationError, HueyException, RateLimitExceeded,
                          ResultTimeout, RetryTask, TaskException, TaskLockedException,
                          TaskTimeout)

__all__ = ['HueyException', 'ConfigurationError', 'TaskLockedException', 'ResultTimeout',
           'TaskTimeout', 'RateLimitExceeded', 'CancelExecution', 'RetryTask',
           'TaskException']
