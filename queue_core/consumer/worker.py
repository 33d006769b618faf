"""One worker's loop: claim tasks (several at once with prefetch), execute them, release
them; never busy-poll.

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
from .held import HeldTasks
from .progress import Progress
from .queue_protocol import WorkerQueue
from .recovery import hand_back

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

    Each claim takes up to ``config.prefetch`` tasks in one storage call (each with its
    own in-flight record); they run one after the other, in queue order. Before a task
    starts and after it ends the worker notes it in its progress file (``progress.py``),
    so that if it dies, the tasks it never started go back to the head of the queue
    without a signal. Finished tasks' records are dropped by the next claim, in the same
    round trip. Unstarted tasks in hand when the worker stops are handed back likewise.

    ``owner`` names this worker in the in-flight table. Records it cannot account for
    after a storage outage (a claim whose reply was lost, an execution cut short by the
    storage) are recovered once the storage answers again, so none of them is left
    renewed forever.
    """

    def __init__(self, queue: WorkerQueue, config: ConsumerConfig, owner: str, *,
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
        #: Claimed tasks not started yet, in claim order.
        self._held = HeldTasks(queue, owner, None, config.prefetch_hold)
        #: Whether the last task was short enough to claim several at once again.
        self._short = True

    def run(self) -> None:
        """The whole life of a worker: renewal thread, startup hooks, loop, shutdown hooks."""
        renewer = LeaseRenewer(self.queue, self.owner, self.config.lease,
                               heartbeat=self.heartbeat, parent_pid=self.parent_pid)
        renewer.start()
        progress = Progress(self.owner)
        self._held = HeldTasks(self.queue, self.owner, progress, self.config.prefetch_hold)
        logger.info('worker %s started', self.owner)
        try:
            self.queue.run_startup_hooks()
            self._sinks('coalesce_signals')
            self.loop()
        finally:
            self._held.close()
            self._hand_back_held()
            self._release_finished()
            self._sinks('flush_signal_sinks')
            self.queue.run_shutdown_hooks()
            renewer.stop()
            if not (self._held or self._held.done()):  # else recovery reads it
                progress.remove()
            logger.info('worker %s stopped after %d task(s)', self.owner, self.tasks_done)

    def _sinks(self, method: str) -> None:
        """Call the queue's sink hook ``method`` if this queue has it."""
        hook = getattr(self.queue, method, None)
        if hook is not None:
            hook()

    def _stopping(self) -> bool:
        return self.stop.is_set() or self.halt.is_set()

    def _recycle_due(self) -> bool:
        return self.config.max_tasks is not None and self.tasks_done >= self.config.max_tasks

    def _batch_size(self) -> int:
        size = self.config.prefetch if self._short else 1
        if self.config.max_tasks is not None:
            size = min(size, max(self.config.max_tasks - self.tasks_done, 1))
        return size

    def loop(self) -> None:
        """Claim/execute until told to stop; wait on the storage when the queue is empty."""
        backoff = Backoff(self.stop, self.config.backoff_initial, self.config.backoff_max)
        while not (self._stopping() or self._recycle_due()):
            try:
                if self._suspect_orphans:
                    self._recover_orphans()
                done = self._held.done()
                claimed = self.queue.claim_many(self.owner, self.config.lease,
                                                self._batch_size(), release=done)
                self._held.dropped(done)
                if not claimed:
                    self._sinks('flush_signal_sinks')  # nothing may wait while we block
                    self.queue.storage.wait_for_work(self.config.poll_interval)
            except StorageError as exc:
                self._suspect_orphans = True
                self._sinks('flush_signal_sinks')
                backoff.failed('claiming a task', exc)
                continue
            backoff.succeeded()
            self._held.fill(claimed)
            self._run_held()
            if self._stopping() or self._recycle_due():
                self._hand_back_held()
                self._release_finished()

    def _run_held(self) -> None:
        """Run the claimed tasks in order, until a stop or a storage failure; those not
        started stay in ``_held``. A stop that arrives while a claim is under way leaves
        every task of it unstarted."""
        while not (self._stopping() or self._suspect_orphans):
            claimed = self._held.start_next()
            if claimed is None:
                return
            self.process(*claimed)

    def process(self, task: Any, token: str) -> None:
        """Execute one claimed task (noted as started) as the worker. Its in-flight record
        is dropped by the next claim (one storage round trip) or, when the worker stops,
        on its own."""
        started = time.monotonic()
        guard = self.guard.running(task) if self.guard is not None else nullcontext()
        try:
            with self.queue.emitting_as(SOURCE_WORKER), guard:
                self.queue.execute(task,
                                   requeue_interrupted=self.config.requeue_interrupted)
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
        self._short = self._held.finished(token) < self.config.prefetch_hold
        self.tasks_done += 1

    def _patient(self) -> StopFlag:
        # A graceful stop must not skip a release or a hand-back (the supervisor would
        # report the task as interrupted), but it must end: an immediate stop gives up
        # at once, a graceful one after STOP_RELEASE_PATIENCE seconds of storage outage
        # (the record then stays and is recovered, as for a killed worker).
        return (DeadlineFlag(self.halt, STOP_RELEASE_PATIENCE) if self.stop.is_set()
                else self.halt)

    def _release(self, token: str) -> bool:
        backoff = Backoff(self._patient(), self.config.backoff_initial,
                          self.config.backoff_max)
        done, _ = backoff.call('releasing a finished task', lambda: self.queue.release(token))
        if not done:
            logger.error('worker %s stopped without releasing a finished task (storage '
                         'unreachable); it will be recovered', self.owner)
        return done

    def _release_finished(self) -> None:
        """Drop the finished tasks' records (when no further claim carried them)."""
        for token in self._held.done():
            if not self._release(token):
                return
            self._held.dropped([token])

    def _hand_back_held(self) -> None:
        """Put the unstarted tasks back at the head of the queue, in order, unchanged."""
        if not self._held:
            return
        backoff = Backoff(self._patient(), self.config.backoff_initial,
                          self.config.backoff_max)
        done, _ = backoff.call('handing back unstarted tasks', self._held.hand_back)
        if not done:  # the records stay; recovery finds them unstarted
            logger.error('worker %s could not hand back its unstarted tasks; they will be '
                         'recovered', self.owner)

    def _recover_orphans(self) -> None:
        """Recover this worker's records that no running execution accounts for."""
        finished = set(self._held.done())
        self._held.take_all()
        orphans = []
        for record in self.queue.storage.in_flight_of([self.owner]):
            if record.token in finished:  # finished for good: just drop it
                self.queue.release(record.token)
                self._held.dropped([record.token])
            elif record.token in self._cut_short:
                self.queue.recover(record, self.config.requeue_interrupted)
            else:  # never started (held, or claimed while the reply was lost)
                orphans.append(record)
        for record in sorted(orphans, key=lambda rec: rec.token, reverse=True):
            hand_back(self.queue, record)
        self._held.dropped(list(finished))  # the rest were gone already
        self._cut_short.clear()
        self._suspect_orphans = False
