"""Queue drivers for in-process tests: a recorder of every signal a queue's handlers see,
and one worker or scheduler step run by hand.

Ports, polling, a throwaway Redis and child processes are in ``scripts.support``.
"""
from __future__ import annotations

from typing import Any


class SignalRecorder:
    """Records ``(signal, task_id)`` pairs (and exceptions) from a queue's handlers."""

    def __init__(self, queue: Any) -> None:
        self.events: list[tuple[str, str]] = []
        self.exceptions: list[BaseException] = []
        self.tasks: list[Any] = []
        self.retries: list[int] = []
        from queue_core.signals import ALL_SIGNALS
        # Registered per signal (not catch-all) so it runs before handlers added later.
        queue.signal(*ALL_SIGNALS)(self._record)

    def _record(self, signal: str, task: Any, *extra: Any) -> None:
        self.events.append((signal, task.id))
        self.tasks.append(task)
        self.retries.append(task.retries)
        if extra:
            self.exceptions.append(extra[0])

    def signals(self, task_id: str | None = None) -> list[str]:
        """The recorded signals, for one task or all."""
        return [sig for sig, tid in self.events if task_id is None or tid == task_id]

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.events.clear()
        self.exceptions.clear()
        self.tasks.clear()
        self.retries.clear()


def execute_next(queue: Any, timestamp: Any = None) -> Any:
    """Dequeue one task and run it through the full lifecycle, as a worker would."""
    task = queue.dequeue()
    assert task is not None, 'the queue is empty'
    return queue.execute(task, timestamp)


def run_schedule(queue: Any, timestamp: Any) -> int:
    """Move tasks due at ``timestamp`` from the schedule to the queue, as the scheduler does."""
    from queue_core.signals import SOURCE_SCHEDULER
    tasks = queue.read_schedule(timestamp)
    with queue.emitting_as(SOURCE_SCHEDULER):
        for task in tasks:
            queue.enqueue(task)
    return len(tasks)
