"""Result handles: one task's result, a group of them, and a chord's."""
from __future__ import annotations

import datetime
import time
from typing import TYPE_CHECKING, Any, Iterator

from .exceptions import ResultTimeout, TaskException
from .values import Error

if TYPE_CHECKING:  # pragma: no cover
    from .api import TaskQueue
    from .task import Task


class _Empty:
    def __repr__(self) -> str:
        return '<empty>'


EMPTY = _Empty()


class Result:
    """The handle of one enqueued task's result.

    Reading a result removes it from storage unless ``preserve=True``; the handle keeps the
    value it read, so later ``get()`` calls return it again until ``reset()``.
    """

    def __init__(self, queue: 'TaskQueue', task: 'Task') -> None:
        self.queue = queue
        self.task = task
        self._value: Any = EMPTY

    @property
    def id(self) -> str:
        """The task id, which is also the result's key."""
        return self.task.id

    def __repr__(self) -> str:
        return '<Result %s>' % self.id

    def __call__(self, blocking: bool = False, timeout: float | None = None,
                 **kwargs: Any) -> Any:
        """The same as ``get``: ``handle(True)`` waits for the value."""
        return self.get(blocking, timeout, **kwargs)

    def _read(self, preserve: bool) -> Any:
        return self.queue.read_result(self.id, preserve)

    def get_raw_result(self, blocking: bool = False, timeout: float | None = None,
                       backoff: float = 1.15, max_delay: float = 1.0,
                       revoke_on_timeout: bool = False, preserve: bool = False) -> Any:
        """The stored value (an ``Error`` for a failure) or ``None`` when not ready.

        A blocking read waits on the storage's notification (``backoff`` and ``max_delay``
        are accepted for Huey compatibility) and leaves nothing behind in the result
        store, whether it gets the value or times out."""
        if self._value is not EMPTY:
            return self._value
        value = self._read(preserve)
        if value is EMPTY and blocking:
            deadline = None if timeout is None else time.monotonic() + timeout
            while value is EMPTY:
                remaining = 60.0 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    if revoke_on_timeout:
                        self.revoke()
                    raise ResultTimeout('no result for task %s within %ss' % (self.id, timeout))
                self.queue.storage.wait_for_data(self.id, min(remaining, 60.0))
                value = self._read(preserve)
        if value is EMPTY:
            return None
        self._value = value
        return value

    def get(self, blocking: bool = False, timeout: float | None = None, backoff: float = 1.15,
            max_delay: float = 1.0, revoke_on_timeout: bool = False,
            preserve: bool = False) -> Any:
        """The task's return value; ``None`` when not ready (non-blocking).

        A stored failure raises ``TaskException``; a blocking read past ``timeout`` seconds
        raises ``ResultTimeout``. ``backoff`` and ``max_delay`` are accepted for Huey
        compatibility; waiting is notified by the storage rather than polled.
        """
        value = self.get_raw_result(blocking, timeout, backoff, max_delay, revoke_on_timeout,
                                    preserve)
        if isinstance(value, Error):
            raise TaskException(value.metadata)
        return value

    def is_ready(self) -> bool:
        """Whether the result is there; as in Huey it is read into this handle (and so
        removed from storage), so a ``get()`` after ``True`` always finds it."""
        if self._value is EMPTY:
            value = self._read(False)
            if value is not EMPTY:
                self._value = value
        return self._value is not EMPTY

    def reset(self) -> None:
        """Forget the value read so far (to wait for a retry's outcome)."""
        self._value = EMPTY

    def revoke(self, revoke_once: bool = True) -> None:
        """Revoke this task (by default, only its next execution)."""
        self.queue.revoke(self.task, revoke_once=revoke_once)

    def restore(self) -> bool:
        """Undo ``revoke``."""
        return self.queue.restore(self.task)

    def is_revoked(self, timestamp: datetime.datetime | None = None,
                   peek: bool = True) -> bool:
        """Whether this task is revoked, by id or (for a task of a known function) by
        function; ``peek=False`` consumes a ``revoke_once`` revocation."""
        return self.queue.is_revoked(self.task, timestamp, peek)

    def reschedule(self, eta: datetime.datetime | None = None, delay: Any = None,
                   expires: Any = None, priority: int | None = None,
                   preserve_pipeline: bool = True) -> 'Result':
        """Revoke this task once and enqueue a copy (new id) at ``eta``/after ``delay``."""
        task = self.task
        copy = type(task)(task.wrapper, task.args, task.kwargs,
                          registry_name=task.registry_name, name=task.name,
                          eta=self.queue.normalize_eta(eta, delay),
                          retries=task.retries, retry_delay=task.retry_delay,
                          retry_backoff=task.retry_backoff,
                          priority=task.priority if priority is None else priority,
                          expires=task.expires if expires is None else expires,
                          timeout=task.timeout,
                          on_complete=task.on_complete if preserve_pipeline else None,
                          on_error=task.on_error if preserve_pipeline else None)
        self.revoke(revoke_once=True)
        handle = self.queue.enqueue(copy)
        return handle if isinstance(handle, Result) else Result(self.queue, copy)


class ResultGroup:
    """Handles of several tasks: callable or ``.get()`` for the list of values."""

    def __init__(self, results: list[Result]) -> None:
        self.results = results

    def __repr__(self) -> str:
        return '<ResultGroup %d>' % len(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[Result]:
        return iter(self.results)

    def __getitem__(self, index: int) -> Any:
        """The value of the ``index``-th task, waiting for it (as in Huey); the handles
        themselves are ``group.results`` or iteration."""
        return self.results[index].get(True)

    def get(self, blocking: bool = False, timeout: float | None = None,
            **kwargs: Any) -> list[Any]:
        """Every value, in order (``None`` for one not ready unless ``blocking``, as in
        Huey); ``timeout`` bounds the whole read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(result.get(blocking, remaining, **kwargs))
        return values

    __call__ = get

    def as_completed(self, backoff: float = 1.15, max_delay: float = 1.0,
                     timeout: float | None = None) -> Iterator[Any]:
        """Yield each value as soon as it is ready (a failure raises ``TaskException``);
        waits are notified by the storage (``backoff``/``max_delay`` accepted as in Huey)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waiting = list(self.results)
        while waiting:
            ready = [r for r in waiting if r.is_ready()]
            for result in ready:
                waiting.remove(result)
                yield result.get()
            if waiting and not ready:
                remaining = 1.0 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    raise ResultTimeout('%d results not ready within %ss'
                                        % (len(waiting), timeout))
                head = waiting[0]
                head.queue.storage.wait_for_data(head.id, min(remaining, 1.0))

    def reset(self) -> None:
        """Reset every handle."""
        for result in self.results:
            result.reset()


class ChordResult(Result):
    """The handle of a chord: reads the callback's result. ``results`` is the members'
    group (``results()`` their values), ``callback`` the callback's handle, and
    ``pipeline_results`` the group of the callback's pipeline (``None`` without one)."""

    def __init__(self, queue: 'TaskQueue', callback: 'Task', results: ResultGroup) -> None:
        super().__init__(queue, callback)
        self.results = results
        self.callback = Result(queue, callback)
        steps = callback.chain()
        self.pipeline_results = ResultGroup(
            [self.callback] + [Result(queue, step) for step in steps[1:]]
        ) if len(steps) > 1 else None

    def get_raw_result(self, *args: Any, **kwargs: Any) -> Any:
        """The callback's stored value (shared with ``callback`` and ``pipeline_results``)."""
        return self.callback.get_raw_result(*args, **kwargs)

    def is_ready(self) -> bool:
        """Whether the callback's result is ready."""
        return self.callback.is_ready()

    def __repr__(self) -> str:
        return '<ChordResult %s>' % self.id

    def reset(self) -> None:
        """Reset the callback's and every member's handle."""
        self.callback.reset()
        self.results.reset()
        if self.pipeline_results is not None:
            self.pipeline_results.reset()
