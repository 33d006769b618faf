"""The lifecycle of one execution (SPEC §2): decide, run, store, signal, retry, chain.

``Executor.execute`` is what the consumer's workers and the tests' ``execute_next`` call.
Time comes in as ``timestamp`` (a naive datetime in the queue's clock).
"""
from __future__ import annotations

import datetime
import logging
import time
import traceback
from typing import TYPE_CHECKING, Any, ContextManager, Protocol

from . import signals as S
from .exceptions import (CancelExecution, RateLimitExceeded, RetryTask, SerializationError,
                         TaskException, TaskLocked, TaskTimeout)
from .values import SKIPPED, Error

if TYPE_CHECKING:  # pragma: no cover
    from .hooks import HookSet
    from .storage import Storage
    from .task import Task

logger = logging.getLogger('queue_core')

CHORD_PREFIX = 'chord.'
CHORD_TTL = 7 * 86400


class ExecutionQueue(Protocol):
    """What running a task needs of its queue (``TaskQueue`` is one): its options, hooks,
    storage and serializer, and the calls that signal, store and enqueue."""

    results: bool
    store_none: bool
    store_intermediate_errors: bool
    pre_execute_hooks: 'HookSet'
    post_execute_hooks: 'HookSet'
    storage: 'Storage'
    serializer: Any

    def emit(self, signal: str, task: 'Task', exc: BaseException | None = None, *,
             final: bool = False, bump: bool = True) -> None:
        """Hand a signal to the sinks and handlers."""

    def emitting_as(self, source: str) -> ContextManager[None]:
        """Events from this thread carry ``source`` within the block."""

    def enqueue(self, item: Any) -> Any:
        """Put a task on the queue."""

    def add_schedule(self, task: 'Task') -> None:
        """Put a task on the schedule."""

    def is_revoked(self, task: Any, timestamp: datetime.datetime | None = None,
                   peek: bool = True) -> bool:
        """Whether the task is revoked (``peek=False`` uses up a once-only revocation)."""

    def put_result(self, key: str, value: Any) -> None:
        """Store a result."""

    def copy_task(self, task: 'Task') -> 'Task':
        """An independent copy of a task."""

    def deserialize_task(self, data: bytes) -> 'Task':
        """A task from its message."""

    def normalize_eta(self, eta: datetime.datetime | None = None, delay: Any = None,
                      now: datetime.datetime | None = None) -> datetime.datetime | None:
        """An absolute eta in the queue's clock."""

    def build_error_result(self, task: 'Task', exc: BaseException) -> dict[str, Any]:
        """The metadata stored for a failure."""


def build_error_result(task: 'Task', exc: BaseException) -> dict[str, Any]:
    """The metadata of a failure: ``error`` is ``repr`` of the exception as raised (for a
    ``TaskException`` from a nested result read, the inner task's error), ``traceback``,
    ``retries`` and ``task_id``."""
    tb = exc.__traceback__
    text = ''.join(traceback.format_exception(type(exc), exc, tb)) if tb else getattr(
        exc, 'traceback', None)
    error = repr(exc)
    if isinstance(exc, TaskException):
        error = exc.metadata.get('error') or error
    return {'error': error, 'traceback': text, 'retries': task.retries, 'task_id': task.id}


def error_value(queue: ExecutionQueue, task: 'Task', exc: BaseException) -> Error:
    """The stored form of a failure, built by the queue's ``build_error_result``."""
    return Error(queue.build_error_result(task, exc))


class Executor:
    """Runs tasks through the full lifecycle on behalf of one queue."""

    def __init__(self, queue: ExecutionQueue) -> None:
        self.queue = queue

    def execute(self, task: 'Task', timestamp: datetime.datetime,
                requeue_interrupted: bool = False) -> Any:
        """Schedule, revoke, expire or run ``task``; return its value or ``None``. A task
        cut short by shutdown goes back on the queue with ``requeue_interrupted``."""
        q = self.queue
        if task.eta is not None and task.eta > timestamp:
            q.add_schedule(task)
            return None
        if task.revocations_seen != 0 and q.is_revoked(task, timestamp, peek=False):
            logger.info('%s revoked, not executing', task)
            self._skipped(S.SIGNAL_REVOKED, task)
            return None
        if task.expires_at is not None and task.expires_at < timestamp:
            logger.info('%s expired at %s, not executing', task, task.expires_at)
            self._skipped(S.SIGNAL_EXPIRED, task)
            return None
        logger.info('executing %s', task)
        q.emit(S.SIGNAL_EXECUTING, task)
        if q.pre_execute_hooks:
            try:
                q.pre_execute_hooks.run(task)
            except CancelExecution as exc:
                self._canceled(task, exc, timestamp)
                return None
        return self._run(task, timestamp, requeue_interrupted)

    def _skipped(self, signal: str, task: 'Task') -> None:
        self.queue.emit(signal, task, final=True)
        abort_chord_member(self.queue, task, SKIPPED)

    def _run(self, task: 'Task', timestamp: datetime.datetime, requeue_interrupted: bool) -> Any:
        task.mark_started()
        start = time.perf_counter()
        try:
            value = task.execute()
        except KeyboardInterrupt:
            self._interrupted(task, requeue_interrupted)
            raise
        except TaskTimeout as exc:
            logger.warning('%s timed out after %.3fs', task, time.perf_counter() - start)
            self._failed(task, exc, S.SIGNAL_TIMEOUT, timestamp)
        except RateLimitExceeded as exc:
            self._rate_limited(task, exc, timestamp)
        except TaskLocked as exc:
            logger.warning('%s not run: unable to acquire lock', task)
            self._failed(task, exc, S.SIGNAL_LOCKED, timestamp, withheld=True)
        except CancelExecution as exc:
            self._canceled_inside(task, exc, timestamp)
        except RetryTask as exc:
            logger.info('%s asked to be retried', task)
            self.queue.post_execute_hooks.run_isolated(task, None, exc)
            eta = self.queue.normalize_eta(exc.eta, exc.delay, now=timestamp) if (
                exc.eta is not None or exc.delay is not None) else None
            self._retry(task, timestamp, spend=False, eta=eta)
        except Exception as exc:
            logger.exception('%s failed after %.3fs', task, time.perf_counter() - start)
            self._failed(task, exc, S.SIGNAL_ERROR, timestamp)
        else:
            logger.info('%s complete in %.3fs', task, time.perf_counter() - start)
            return self._completed(task, value, timestamp)
        return None

    def _completed(self, task: 'Task', value: Any, timestamp: datetime.datetime) -> Any:
        q = self.queue
        if q.results and not task.periodic and (value is not None or q.store_none):
            try:
                q.put_result(task.id, value)
            except SerializationError as exc:
                logger.error('%s returned a value that cannot be stored: %s', task, exc)
                self._failed(task, exc, S.SIGNAL_ERROR, timestamp)
                return None
        q.post_execute_hooks.run_isolated(task, value, None)
        q.emit(S.SIGNAL_COMPLETE, task, final=True)
        if task.on_complete is not None:
            step = task.on_complete
            step.extend_data(value)
            q.enqueue(step)
        settle_chord(q, task, value)
        return value

    def _failed(self, task: 'Task', exc: BaseException, signal: str,
                timestamp: datetime.datetime, withheld: bool = False, spend: bool = True,
                eta: datetime.datetime | None = None) -> None:
        """A failed attempt: store, signal, hooks, on_error, then retry or give up.

        As in Huey, the error is stored and ``on_error`` runs when the failure is final, or
        on every attempt when ``store_intermediate_errors`` is on and the failure is not one
        that waits for a retry anyway (``withheld``: locked, rate-limited)."""
        q = self.queue
        final = spend and task.retries <= 0
        surface = final or (q.store_intermediate_errors and not withheld)
        error = error_value(q, task, exc) if surface else None
        if error is not None and q.results and not task.periodic:
            q.put_result(task.id, error)
        q.emit(signal, task, exc, final=final)
        q.post_execute_hooks.run_isolated(task, None, exc)
        if error is not None and task.on_error is not None:
            step = q.copy_task(task.on_error)
            step.extend_data(exc)
            q.enqueue(step)
        if final:
            assert error is not None  # a final failure is always surfaced
            give_up(q, task, error)
        else:
            self._retry(task, timestamp, spend=spend, eta=eta)

    def _rate_limited(self, task: 'Task', exc: RateLimitExceeded,
                      timestamp: datetime.datetime) -> None:
        """``retry=True``: rescheduled for the next window without spending a retry; else
        retried only with retries left, also after the window (or ``retry_delay``)."""
        delay = task.retry_delay or exc.delay or 0
        eta = timestamp + datetime.timedelta(seconds=max(delay, 0))
        logger.warning('%s rate-limited on %s', task, exc.key)
        self._failed(task, exc, S.SIGNAL_RATE_LIMITED, timestamp, withheld=True,
                     spend=not exc.retry, eta=eta)

    def _canceled(self, task: 'Task', exc: CancelExecution,
                  timestamp: datetime.datetime) -> None:
        """Canceled by a pre-execute hook: nothing stored, retried only if it asked."""
        retry = exc.retry is True
        logger.warning('%s canceled%s', task, ' (will be retried)' if retry else '')
        if retry:
            task.retries = max(task.retries, 1)
        self.queue.emit(S.SIGNAL_CANCELED, task, exc, final=not retry)
        if retry:
            self._retry(task, timestamp, spend=True)
        else:
            abort_chord_member(self.queue, task, SKIPPED)

    def _canceled_inside(self, task: 'Task', exc: CancelExecution,
                         timestamp: datetime.datetime) -> None:
        """``CancelExecution`` raised by the task itself (as in Huey 3.5.4): the error is
        stored like any failure; retried when ``retry=True``, or ``retry=None`` with
        retries left; ``retry=False`` ends it."""
        if exc.retry or (exc.retry is None and task.retries > 0):
            task.retries = max(task.retries, 1)
        else:
            task.retries = 0
        logger.warning('%s raised CancelExecution%s', task,
                       ' (will be retried)' if task.retries else '')
        self._failed(task, exc, S.SIGNAL_CANCELED, timestamp)

    def _interrupted(self, task: 'Task', requeue: bool) -> None:
        q = self.queue
        logger.warning('%s interrupted by shutdown%s', task, ' (requeued)' if requeue else '')
        q.emit(S.SIGNAL_INTERRUPTED, task, final=not requeue)
        if requeue:
            with q.emitting_as(S.SOURCE_CONSUMER):
                task.eta = None
                q.enqueue(task)
        else:
            give_up(q, task, error_value(q, task, KeyboardInterrupt('interrupted by shutdown')))

    def _retry(self, task: 'Task', timestamp: datetime.datetime, spend: bool,
               eta: datetime.datetime | None = None) -> None:
        """RETRYING, then the copy goes on the schedule (delay/eta) or back on the queue."""
        q = self.queue
        q.emit(S.SIGNAL_RETRYING, task)
        if spend:
            task.retries -= 1
        if eta is None and task.retry_delay:
            eta = timestamp + datetime.timedelta(seconds=task.retry_delay)
            if task.retry_backoff:
                task.retry_delay = task.retry_delay * task.retry_backoff
        logger.warning('%s will be retried (%d retries left)%s', task, task.retries,
                       ' at %s' % eta if eta else '')
        task.eta = eta
        if eta is not None:
            q.add_schedule(task)
        else:
            q.enqueue(task)


def give_up(queue: ExecutionQueue, task: 'Task', error: Error) -> None:
    """A task failed for good: each later pipeline step gets the same ``Error`` (naming the
    failed task, as in Huey), a chord gets it too."""
    if queue.results:
        step = task.on_complete
        while step is not None:
            queue.put_result(step.id, error)
            step = step.on_complete
    abort_chord_member(queue, task, error)


def abort_chord_member(queue: ExecutionQueue, task: 'Task', outcome: Any) -> None:
    """The rest of ``task``'s pipeline will not run: report ``outcome`` to the chord its
    last step belongs to (a chord member's membership sits on its pipeline's tail)."""
    step: 'Task | None' = task
    while step is not None:
        if step.chord:
            settle_chord(queue, step, outcome)
            return
        step = step.on_complete


def settle_chord(queue: ExecutionQueue, task: 'Task', outcome: Any) -> None:
    """Record a chord member's final outcome; the last one enqueues the callback with the
    list of outcomes appended to its own arguments (as in Huey)."""
    info = task.chord
    if not info:
        return
    chord_id, size = info['id'], info['size']
    storage = queue.storage
    storage.put_data('%s%s.%d' % (CHORD_PREFIX, chord_id, info['index']),
                     queue.serializer.serialize(outcome), ttl=CHORD_TTL)
    if storage.incr(CHORD_PREFIX + chord_id, 1, ttl=CHORD_TTL) != size:
        return
    outcomes = []
    for index in range(size):
        data = storage.pop_data('%s%s.%d' % (CHORD_PREFIX, chord_id, index))
        outcomes.append(queue.serializer.deserialize(data) if data is not None else SKIPPED)
    storage.incr(CHORD_PREFIX + chord_id, -size, ttl=CHORD_TTL)  # the chord may be enqueued again
    data = storage.pop_data('%s%s.cb' % (CHORD_PREFIX, chord_id))
    if data is None:
        logger.error('chord %s finished but its callback is missing', chord_id)
        return
    callback = queue.deserialize_task(data)
    callback.extend_data((outcomes,))
    queue.enqueue(callback)
