"""A queue with no local signal handlers, so a worker's bus publisher batches its events
(a local handler makes each event leave before the handler runs)."""
from __future__ import annotations

import os
import time

from queue_core import TaskQueue

q = TaskQueue('quiet', storage=os.environ['QUEUE_STORAGE'])


@q.task()
def add(a, b):
    return a + b


@q.task()
def sleep_for(seconds):
    time.sleep(seconds)
    return seconds
