"""``tseq``: the count of a task's events handed to a bus (DESIGN contract point 6).

It travels inside the task message, so a worker's events continue the numbering the
application's began and the broker can put each task's events in lifecycle order. Only a
process with a bus counts (``counting``): one without leaves the count alone, so the
broker never waits for an event that was never sent. A task whose ``tseq`` is ``None``
(a supervisor's report on a recovered task) is not counted.

A write to storage is announced by an event (``ENQUEUED``, ``SCHEDULED``) sent after the
write, yet the stored copy must carry that event's number: ``encode_counted`` counts it
before encoding, and ``uncount`` takes it back when the write fails.
"""
from __future__ import annotations

from typing import Callable

from .exceptions import SerializationError
from .task import Task


def count_event(task: Task, counting: bool) -> None:
    """Count one event about to be handed to the sinks."""
    if counting and task.tseq is not None:
        task.tseq += 1


def uncount(task: Task, counting: bool) -> None:
    """Take back the count of an event that will not be sent (its write failed)."""
    if counting and task.tseq:
        task.tseq -= 1


def encode_counted(task: Task, counting: bool, encode: Callable[[Task], bytes]) -> bytes:
    """``encode(task)`` with the event announcing its write already counted; an
    unserializable task leaves the count as it was."""
    count_event(task, counting)
    try:
        return encode(task)
    except SerializationError:
        uncount(task, counting)
        raise
