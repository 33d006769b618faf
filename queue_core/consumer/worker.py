"""One worker's loop: claim a task, execute it, release it; never busy-poll.

The same loop runs in a worker process (see ``process.py``, which also makes a running
task interruptible) and in a worker thread (``-k thread``).
"""
from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Protocol

from ..exceptions import StorageError
from ..signals import SOURCE_WORKER
from .backoff import Backoff, DeadlineFlag, StopFlag
from .config import ConsumerConfig
from .lease import LeaseRenewer

logger = logging.getLogger('queue_core.consumer')

#: Longest a gracefully stopping worker retries releasing its last task through an outage.
STOP_RELEASE_PATIENCE = 15.0


class TaskGuard(Protocol):
    """What a worker process wraps around each execution (see ``process.ProcessGuard``)."""

    def running(self, task: Any) -> ContextManager[None]:
        """Context in which ``task`` executes and may be interrupted."""

    def reported(self, task: Any) -> bool:
        """Whether INTERRUPTED was emitted for ``task`` during its execution."""

    def timed_out(self, task: Any) -> bool:
        """Whether ``task`` was stopped by its timeout during its execution."""


class Worker:
    """Claims and executes tasks until ``stop`` (graceful) or ``halt`` (immediate) is set,
    or until it has run ``config.max_tasks`` tasks.

    ``owner`` names this worker in the in-flight table. Records it cannot account for
    after a storage outage (a claim whose reply was lost, an execution cut short by the
    storage) are recovered through ``queue.recover`` once the storage answers again, so
    none of them is left renewed forever.
    """

    def __init__(self, queue: Any, config: ConsumerConfig, owner: str, *,
                 stop: StopFlag | None = None, halt: StopFlag | None = None,
                 guard: TaskGuard | None = None,
                 heartbeat: Callable[[], None] | None = None,
                 parent_pid: int | None = None) -> None:
        self.queue = queue
        self.config = config
        self.owner = owner
        self.stop = stop or StopFlag()
        self.halt = halt or StopFlag()
        self.guard = guard
        self.heartbeat = heartbeat
        self.parent_pid = parent_pid
        self.tasks_done = 0
        self._suspect_orphans = False
        self._cut_short: set[str] = set()
        #: The finished task's record, dropped by the next claim in the same round trip.
        self._finished: str | None = None

    def run(self) -> None:
        """The whole life of a worker: renewal thread, startup hooks, loop, shutdown hooks."""
        renewer = LeaseRenewer(self.queue, self.owner, self.config.lease,
                               heartbeat=self.heartbeat, parent_pid=self.parent_pid)
        renewer.start()
        logger.info('worker %s started', self.owner)
        try:
            self.queue.run_startup_hooks()
            self.loop()
        finally:
            self._release_finished()
            self.queue.run_shutdown_hooks()
            renewer.stop()
            logger.info('worker %s stopped after %d task(s)', self.owner, self.tasks_done)

    def _recycle_due(self) -> bool:
        return self.config.max_tasks is not None and self.tasks_done >= self.config.max_tasks

    def loop(self) -> None:
        """Claim/execute until told to stop; wait on the storage when the queue is empty."""
        backoff = Backoff(self.stop, self.config.backoff_initial, self.config.backoff_max)
        while not (self.stop.is_set() or self.halt.is_set() or self._recycle_due()):
            try:
                if self._suspect_orphans:
                    self._recover_orphans()
                claimed = self.queue.claim(self.owner, self.config.lease,
                                           release=self._finished)
                self._finished = None
                if claimed is None:
                    self.queue.storage.wait_for_work(self.config.poll_interval)
            except StorageError as exc:
                self._suspect_orphans = True
                backoff.failed('claiming a task', exc)
                continue
            backoff.succeeded()
            if claimed is None:
                continue
            if self.stop.is_set() or self.halt.is_set():
                # The stop arrived while the claim was under way: the task was never
                # started, so it goes back to the queue without any signal.
                self._give_back(*claimed)
                break
            self.process(*claimed)
            if self.stop.is_set() or self.halt.is_set() or self._recycle_due():
                self._release_finished()

    def process(self, task: Any, token: str) -> None:
        """Execute one claimed task as the worker. Its in-flight record is dropped by the
        next claim (one storage round trip) or, when the worker stops, on its own."""
        started = time.monotonic()
        guard = self.guard.running(task) if self.guard is not None else nullcontext()
        try:
            with self.queue.emitting_as(SOURCE_WORKER), guard:
                self.queue.execute(task)
        except KeyboardInterrupt:
            self.stop.set()
            self.halt.set()
            if self.guard is not None and not self.guard.reported(task):
                # Interrupted before the queue could report it: leave the record for the
                # supervisor, which reports and recovers it when this process exits.
                logger.warning('worker %s interrupted %s %s before it was reported',
                               self.owner, task.name, task.id)
                return
            logger.debug('worker %s interrupted %s %s after %.3fs', self.owner, task.name,
                        task.id, time.monotonic() - started)
        except StorageError as exc:
            logger.error('worker %s: storage failed while executing %s %s (%s); it will be '
                         'recovered when the storage returns', self.owner, task.name,
                         task.id, exc)
            self._cut_short.add(token)
            self._suspect_orphans = True
            return
        except Exception:
            logger.exception('worker %s: executing %s %s failed', self.owner, task.name,
                             task.id)
        else:
            if self.guard is not None and self.guard.timed_out(task):
                logger.warning('worker %s stopped %s %s at its timeout of %ss', self.owner,
                               task.name, task.id, task.timeout)
            # The queue logs each state at INFO; this line adds the worker's view.
            logger.debug('worker %s finished %s %s in %.3fs', self.owner, task.name, task.id,
                        time.monotonic() - started)
        self.tasks_done += 1
        self._finished = token

    def _release(self, token: str) -> None:
        # A graceful stop must not skip the release (the supervisor would report a
        # finished task as interrupted), but it must end: an immediate stop gives up at
        # once, a graceful one after STOP_RELEASE_PATIENCE seconds of storage outage
        # (the record then stays and is recovered, as for a killed worker).
        stop = (DeadlineFlag(self.halt, STOP_RELEASE_PATIENCE) if self.stop.is_set()
                else self.halt)
        backoff = Backoff(stop, self.config.backoff_initial, self.config.backoff_max)
        done, _ = backoff.call('releasing a finished task', lambda: self.queue.release(token))
        if not done:
            logger.error('worker %s stopped without releasing a finished task (storage '
                         'unreachable); it will be recovered', self.owner)

    def _release_finished(self) -> None:
        """Drop the last finished task's record (when no further claim carried it)."""
        if self._finished is not None:
            self._release(self._finished)
            self._finished = None

    def _give_back(self, task: Any, token: str) -> None:
        try:
            self.queue.storage.enqueue(self.queue.serialize_task(task), task.priority or 0)
        except StorageError as exc:  # the record stays in flight; recovery will see it
            logger.error('worker %s could not put back %s %s: %s', self.owner, task.name,
                         task.id, exc)
            return
        self._release(token)
        logger.debug('worker %s put back %s %s unstarted', self.owner, task.name, task.id)

    def _recover_orphans(self) -> None:
        """Recover this worker's records that no running execution accounts for."""
        if self._finished is not None:  # finished for good: just drop it
            self.queue.release(self._finished)
            self._finished = None
        for record in self.queue.storage.in_flight_of([self.owner]):
            if record.token in self._cut_short:
                self.queue.recover(record)
            else:  # claimed while the reply was lost: never started, so put it back
                self.queue.recover(record, requeue=True)
        self._cut_short.clear()
        self._suspect_orphans = False
