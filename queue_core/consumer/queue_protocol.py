"""What the consumer (and ``queue-status``) needs of the user's ``TaskQueue``.

Each part of the consumer is handed the application's ``TaskQueue`` (``api.py``); these
protocols list, per part, exactly the attributes and methods it uses, with ``TaskQueue``'s
signatures, so ``mypy`` checks that a ``TaskQueue`` fits wherever one is passed in:

- ``RecoveryQueue``: reporting, requeueing and handing back in-flight records whose
  worker is gone (``recovery.py``). It passes the queue on to ``execution.give_up`` and
  ``execution.error_value``, so it extends ``execution.ExecutionQueue``.
- ``WorkerQueue``: one worker's loop, its held tasks, its lease renewal and, in a worker
  process, the guard around each execution (``worker.py``, ``held.py``, ``lease.py``,
  ``process.py``, ``pool.py``). A worker recovers its own orphaned records, so it extends
  ``RecoveryQueue``.
- ``SchedulerQueue``: moving due scheduled tasks and enqueueing periodic ones
  (``scheduler.py``).
- ``ConsumerQueue``: the supervisor, which hands the queue to its workers and its
  scheduler (``supervisor.py``).
- ``StatusQueue``: the read-only look of ``queue-status`` (``status.py``).

A few members are private to ``TaskQueue`` (``_decode``, ``_encode_for_write``,
``_peek_task``): recovery must decode and re-encode a stored message exactly as the queue
does (quarantine and ``tseq`` counting included), so it calls them; they are listed here
so that any change to them shows up as a type error in the consumer.
"""
from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Protocol

from ..execution import ExecutionQueue

if TYPE_CHECKING:  # pragma: no cover
    from ..registry import TaskRegistry
    from ..storage import Storage
    from ..storage.base import InFlight
    from ..task import Task

__all__ = ['ConsumerQueue', 'RecoveryQueue', 'SchedulerQueue', 'StatusQueue',
           'WorkerQueue']


class RecoveryQueue(ExecutionQueue, Protocol):
    """What recovering abandoned in-flight records needs of the queue: its storage (to
    adopt, release and requeue records), the queue's own decoding and encoding of task
    messages, its signals, and (inherited from ``ExecutionQueue``) what
    ``execution.give_up`` needs to end a task whose worker died."""

    def _decode(self, data: bytes) -> Task | None:
        """Private to ``TaskQueue``: the task in a stored message, or ``None`` once an
        unusable message was quarantined (``quarantine.decode``)."""

    def _encode_for_write(self, task: Task) -> bytes:
        """Private to ``TaskQueue``: the message to store for ``task``, its ``tseq``
        counting the event that will announce it."""

    def _peek_task(self, data: bytes) -> Task | None:
        """Private to ``TaskQueue``: the task in a stored message, or ``None`` if it does
        not decode (nothing is quarantined)."""

    def recover(self, record: InFlight, requeue: bool = False,
                owner: str | None = None) -> bool:
        """Report an abandoned in-flight task (``recovery.recover_record``); whether this
        caller won the record."""

    def flush_signal_sinks(self) -> None:
        """Send at once what any sink holds for this thread (a coalescing publisher)."""


class WorkerQueue(RecoveryQueue, Protocol):
    """What a worker needs of the queue: claiming, executing and releasing tasks,
    renewing its leases, putting unstarted tasks back, its hooks and signal sinks, and
    (inherited) what recovering its own orphaned records needs."""

    def claim_many(self, owner: str, lease: float = 30.0, limit: int = 1,
                   release: Iterable[str] = ()) -> list[tuple[Task, str]]:
        """Pop up to ``limit`` tasks, each recorded in flight for ``owner``, as
        ``(task, token)``; ``release`` names finished records to drop in the same call."""

    def release(self, token: str) -> None:
        """Drop an in-flight record once its task reached a final state."""

    def renew_leases(self, owner: str, lease: float = 30.0) -> int:
        """Extend every lease ``owner`` holds; how many were extended."""

    def execute(self, task: Task, timestamp: datetime.datetime | None = None, *,
                requeue_interrupted: bool = False) -> Any:
        """Run ``task`` through its whole lifecycle; its value or ``None``."""

    def serialize_task(self, task: Task) -> bytes:
        """The task message as bytes (an unstarted task is put back as it is)."""

    def run_startup_hooks(self) -> None:
        """Run every startup hook (when a worker starts)."""

    def run_shutdown_hooks(self) -> None:
        """Run every shutdown hook (when a worker stops)."""

    def pre_execute(self, name: str | None = None) -> Callable[..., Any]:
        """Decorator registering a hook run before each task (a process worker's guard)."""

    def post_execute(self, name: str | None = None) -> Callable[..., Any]:
        """Decorator registering a hook run after each task (a process worker's guard)."""

    def signal(self, *signals: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a handler for ``signals`` (the guard's INTERRUPTED
        observer)."""

    def coalesce_signals(self, deferred: bool = False) -> None:
        """Ask the sinks that can to batch this thread's events."""

    def signal_sinks_deadline(self) -> float | None:
        """The earliest ``time.monotonic()`` a sink wants ``flush_signal_sinks()`` called
        for this thread, or ``None``."""

    def close(self) -> None:
        """Flush and close the signal sinks and the storage's connections."""


class SchedulerQueue(Protocol):
    """What the scheduler needs of the queue: its clock setting, its storage (the
    periodic guard keys), and moving and enqueueing tasks as the scheduler."""

    #: Where the once-per-minute guards of periodic tasks are put.
    storage: Storage
    #: Whether the queue's clock is UTC (read with ``getattr``, ``True`` if missing).
    utc: bool

    def emitting_as(self, source: str) -> ContextManager[None]:
        """Events from this thread carry ``source`` within the block."""

    def enqueue(self, item: Any) -> Any:
        """Put a task on the queue."""

    def enqueue_due(self, timestamp: datetime.datetime | None = None) -> list[Task]:
        """Move the scheduled tasks due at ``timestamp`` onto the queue."""

    def read_periodic(self, timestamp: datetime.datetime) -> list[Task]:
        """New tasks for the periodic tasks whose schedule matches ``timestamp``."""


class ConsumerQueue(WorkerQueue, SchedulerQueue, Protocol):
    """What the supervisor needs of the queue: what its workers and its scheduler need,
    and its name, registry, locks and bus for the start-up chores."""

    #: The queue's name (announced on the bus).
    name: str
    #: The registered task wrappers (logged at start).
    registry: TaskRegistry

    def flush_locks(self, *names: str) -> set[str]:
        """Release the named locks and every lock the queue created; those held."""

    def attach_bus(self, bus: Any) -> Any:
        """Publish every signal to a signal bus."""


class StatusQueue(Protocol):
    """What ``queue-status`` reads from the queue (it changes nothing)."""

    #: Read for the result store's keys (locks, results).
    storage: Storage

    def pending(self, limit: int | None = None) -> list[Task]:
        """The queued tasks, in dequeue order."""

    def scheduled(self, limit: int | None = None) -> list[Task]:
        """The scheduled tasks, by eta."""

    def in_flight(self) -> list[dict[str, Any]]:
        """Tasks taken by workers and not yet final, with owner and lease."""
