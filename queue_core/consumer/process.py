"""What runs inside a worker process: fork hygiene, signal handling, interruptible tasks.

Signals in a worker process:
- SIGINT: graceful; the running task finishes, nothing new starts.
- SIGTERM: immediate; the running task is interrupted with ``KeyboardInterrupt`` (the
  queue reports INTERRUPTED) and nothing new starts.
- SIGALRM: armed for the task's ``timeout``; raises ``TaskTimeout`` in the task (TIMEOUT).
  While the task runs it also sends the bus events the worker's publisher gathered once
  the oldest is 0.5 ms old, so that batching never holds an event back for a long task.
- SIGHUP: ignored (the supervisor restarts workers by sending them SIGINT).
"""
from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ..exceptions import TaskTimeout
from ..signals import SIGNAL_INTERRUPTED
from .backoff import StopFlag
from .config import ConsumerConfig
from .queue_protocol import WorkerQueue
from .worker import Worker

logger = logging.getLogger('queue_core.consumer')

_HOOK_NAME = 'queue_core.consumer.interruptible'
#: The shortest alarm armed (setitimer takes 0 as "off"), and the tolerance for early ones.
_MIN_ALARM = 1e-4
#: Signals a worker process handles itself; blocked in the parent across the fork.
WORKER_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


class SharedFlags:
    """Stop requests the supervisor raises in every worker process at once, before it
    signals them, so that no worker takes a new task after the stop began (for example
    one re-enqueued by another worker's INTERRUPTED handler)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context('fork')
        self.stop = ctx.Value('b', 0, lock=False)
        self.halt = ctx.Value('b', 0, lock=False)

    def raise_stop(self) -> None:
        """Every worker stops after its current task."""
        self.stop.value = 1

    def raise_halt(self) -> None:
        """Every worker stops at once."""
        self.stop.value = 1
        self.halt.value = 1


class ProcessGuard:
    """Makes the task function interruptible while, and only while, it runs.

    A pre-execute hook (registered last, so it runs just before the function) marks the
    function as running and arms the timeout; a post-execute hook disarms both. Signals
    that arrive outside the function only set the stop flags, so the queue's own
    bookkeeping is never cut in half.
    """

    def __init__(self, queue: WorkerQueue, stop: StopFlag, halt: StopFlag) -> None:
        self.queue = queue
        self.stop = stop
        self.halt = halt
        self._task: Any = None
        self._in_function = False
        self._raised = False
        self._reported = False
        self._timed_out = False
        self._timeout_at: float | None = None
        self._flush_at: float | None = None

    def install(self) -> None:
        """Install the signal handlers, hooks and the INTERRUPTED observer."""
        signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGALRM, self._on_sigalrm)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.queue.coalesce_signals(deferred=True)  # this guard's alarm sends due events
        self.queue.pre_execute(name=_HOOK_NAME)(self._before_function)
        self.queue.post_execute(name=_HOOK_NAME)(self._after_function)
        self.queue.signal(SIGNAL_INTERRUPTED)(self._on_interrupted)

    @contextmanager
    def running(self, task: Any) -> Iterator[None]:
        """Execution of ``task`` in progress."""
        self._task, self._raised, self._reported, self._timed_out = task, False, False, False
        try:
            yield
        finally:
            self._disarm()
            self._task = None

    def reported(self, task: Any) -> bool:
        """Whether the queue emitted INTERRUPTED for ``task`` in this execution."""
        return self._reported

    def timed_out(self, task: Any) -> bool:
        """Whether the timeout interrupted ``task`` in this execution."""
        return self._timed_out

    def _before_function(self, task: Any) -> None:
        if self._task is None or task.id != self._task.id:
            return
        self._in_function = True
        if self.halt.is_set():
            self._interrupt()
        timeout = getattr(task, 'timeout', None)
        now = time.monotonic()
        self._timeout_at = now + float(timeout) if timeout else None
        self._flush_at = self.queue.signal_sinks_deadline()
        self._arm(now)

    def _arm(self, now: float) -> None:
        """One alarm for the nearer of the task's timeout and the bus events' deadline
        (the events a coalescing publisher gathered must not wait for the task's end)."""
        due = [at for at in (self._timeout_at, self._flush_at) if at is not None]
        if due:
            signal.setitimer(signal.ITIMER_REAL, max(min(due) - now, _MIN_ALARM))

    def _after_function(self, task: Any, value: Any, exc: Any) -> None:
        if self._task is not None and task.id == self._task.id:
            self._disarm()

    def _disarm(self) -> None:
        self._in_function = False
        self._timeout_at = self._flush_at = None
        signal.setitimer(signal.ITIMER_REAL, 0)

    def _interrupt(self) -> None:
        self._raised = True
        self._disarm()
        raise KeyboardInterrupt('worker process received SIGTERM')

    def _on_interrupted(self, sig: str, task: Any, *extra: Any) -> None:
        if self._task is not None and task.id == self._task.id:
            self._reported = True

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.stop.set()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.stop.set()
        self.halt.set()
        if self._in_function and not self._raised:
            self._interrupt()

    def _on_sigalrm(self, signum: int, frame: Any) -> None:
        if not self._in_function or self._raised:
            return
        now = time.monotonic()
        if self._flush_at is not None and now >= self._flush_at - _MIN_ALARM:
            self._flush_at = None
            self.queue.flush_signal_sinks()
        if self._timeout_at is None or now < self._timeout_at - _MIN_ALARM:
            self._arm(now)
            return
        self._raised = self._timed_out = True
        self._in_function = False
        timeout = getattr(self._task, 'timeout', None)
        raise TaskTimeout('task %s exceeded its timeout of %ss'
                          % (getattr(self._task, 'id', '?'), timeout))


def run_worker_process(queue: WorkerQueue, config: ConsumerConfig, owner: str,
                       supervisor_pid: int, heartbeat: Callable[[], None],
                       flags: 'SharedFlags') -> None:
    """Entry point of a forked worker process; returns when the worker stops."""
    stop, halt = StopFlag(flags.stop), StopFlag(flags.halt)
    guard = ProcessGuard(queue, stop, halt)
    guard.install()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
    queue.storage.reset_after_fork()
    worker = Worker(queue, config, owner, stop=stop, halt=halt, guard=guard,
                    heartbeat=heartbeat, parent_pid=supervisor_pid)
    try:
        worker.run()
    finally:
        close_queue(queue)


def close_queue(queue: WorkerQueue) -> None:
    """Flush the bus publishers and storage connections of a process about to exit
    (a forked worker leaves through ``os._exit``, which skips ``atexit``)."""
    try:
        queue.close()
    except Exception:
        logger.exception('closing the queue failed')
