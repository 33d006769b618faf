"""The prefetched tasks a worker holds but has not started, the finished ones whose
records the next claim drops, and the watchdog that acts when a task runs long.

Prefetch trades fairness for round trips: tasks claimed behind a long task would wait for
it while another worker sits idle. So no task waits in a worker's hand longer than
``limit`` seconds (``ConsumerConfig.prefetch_hold``): once a claim is that old, a watchdog thread puts the tasks still
held back at the head of the queue (unchanged, no signal), where an idle worker finds
them, and drops the records of the tasks already finished (which would otherwise be
listed in flight until the next claim). After a task that ran longer than that, the
worker claims one task at a time until its tasks are short again.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..exceptions import StorageError
from .progress import Progress
from .queue_protocol import WorkerQueue

logger = logging.getLogger('queue_core.consumer')

#: Seconds after its claim during which a task may trust the revocation count read with
#: the claim (0: skip the revocation lookups); a task started later looks them up, so a
#: revocation made while it waited in hand is seen.
REVOCATIONS_FRESH = 0.01

class HeldTasks:
    """Claimed tasks not started yet, in claim order; every change under one lock, so the
    watchdog never hands back a task the worker is starting."""

    def __init__(self, queue: WorkerQueue, owner: str, progress: Progress | None,
                 limit: float) -> None:
        self.queue = queue
        self.owner = owner
        self.progress = progress
        self.limit = limit
        self._lock = threading.Lock()
        self._tasks: list[tuple[Any, str]] = []
        self._done: list[str] = []
        self._running_since: float | None = None
        self._filled_at = 0.0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def fill(self, claimed: list[tuple[Any, str]]) -> None:
        """Hold a fresh claim; the watchdog starts with the first claim of several tasks."""
        with self._lock:
            self._tasks = list(claimed)
            self._filled_at = time.monotonic()
        if len(claimed) > 1:  # one task alone leaves nothing to hand back or tidy
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, daemon=True,
                                                name='held-tasks')
                self._thread.start()
            self._wake.set()

    def start_next(self) -> tuple[Any, str] | None:
        """Take the first held task and note it as started (progress file first)."""
        with self._lock:
            if not self._tasks:
                return None
            task, token = self._tasks.pop(0)
            if self.progress is not None:
                self.progress.started(token)
            self._running_since = time.monotonic()
            if self._running_since - self._filled_at > REVOCATIONS_FRESH:
                task.revocations_seen = None
            return task, token

    def finished(self, token: str) -> float:
        """The running task ended (its record is to be dropped); returns how long it ran."""
        with self._lock:
            if self.progress is not None:
                self.progress.finished(token)
            self._done.append(token)
            took = time.monotonic() - (self._running_since or time.monotonic())
            self._running_since = None
            return took

    def done(self) -> list[str]:
        """The finished tasks whose records are still to be dropped."""
        with self._lock:
            return list(self._done)

    def dropped(self, tokens: list[str]) -> None:
        """These finished tasks' records are gone."""
        with self._lock:
            gone = set(tokens)
            self._done = [token for token in self._done if token not in gone]

    def take_all(self) -> list[tuple[Any, str]]:
        """Forget every held task (the caller accounts for them)."""
        with self._lock:
            tasks, self._tasks = self._tasks, []
            return tasks

    def hand_back(self) -> bool:
        """Put every held task back at the head of the queue, in order; False (the rest
        still held) when the storage failed."""
        with self._lock:
            self._hand_back()
        return True

    def _hand_back(self) -> None:
        while self._tasks:
            task, token = self._tasks[-1]
            self.queue.storage.requeue_in_flight(
                token, self.queue.serialize_task(task), task.priority or 0, head=True)
            self._tasks.pop()
            logger.debug('worker %s put back %s %s unstarted', self.owner, task.name,
                         task.id)

    def close(self) -> None:
        """Stop the watchdog."""
        self._closed = True
        self._closing.set()
        self._wake.set()

    def _watch(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            while not self._closed and (self._tasks or self._done):
                age = time.monotonic() - self._filled_at
                if age >= self.limit:
                    self._tidy()
                    break
                self._closing.wait(self.limit - age)

    def _tidy(self) -> None:
        """Hand back what is held and drop the finished records, if the claim is old."""
        try:
            with self._lock:
                if time.monotonic() - self._filled_at < self.limit:
                    return  # a fresh claim came in meanwhile
                self._hand_back()
                while self._done:
                    self.queue.release(self._done[0])
                    self._done.pop(0)
        except StorageError as exc:  # the worker runs them, or drops them, after all
            logger.warning('worker %s could not hand back prefetched tasks: %s',
                           self.owner, exc)
