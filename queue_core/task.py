"""Tasks (one call of a function, with its options) and task wrappers (decorated functions)."""
from __future__ import annotations

import datetime
import inspect
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .clock import normalize_expires
from .exceptions import ConfigurationError, TaskTimeout

if TYPE_CHECKING:  # pragma: no cover
    from .api import TaskQueue
    from .result import Result, ResultGroup

#: Ids made ahead, from one read of the system's random source per batch.
_ready_ids: list[str] = []
_ID_BATCH = 256
#: Byte maps setting a version 4 UUID's version nibble (byte 6) and variant bits (byte 8).
_VERSION_4 = bytes(b & 0x0F | 0x40 for b in range(256))
_VARIANT_RFC = bytes(b & 0x3F | 0x80 for b in range(256))
#: Where each of an id's 32 hex digits goes in its 36-character text (dashes between).
_DIGIT_AT = [d + (d >= 8) + (d >= 12) + (d >= 16) + (d >= 20) for d in range(32)]


def _make_ids(count: int) -> list[str]:
    """``count`` version 4 UUID strings, laid out for all ids at once: each hex digit
    column is copied into place by one slice assignment, so no Python code runs per id."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_VARIANT_RFC)
    digits = raw.hex().encode()
    text = bytearray(b'-' * (37 * count))
    for digit, at in enumerate(_DIGIT_AT):
        text[at::37] = digits[digit::32]
    text[36::37] = b' ' * count
    return text.decode().split()


def new_task_id() -> str:
    """A random (version 4) UUID string, as ``str(uuid.uuid4())`` but a few times cheaper:
    the random bytes are read and formatted 256 ids at a time. A forked child starts with
    none of its parent's ids (the list is emptied at fork)."""
    try:
        return _ready_ids.pop()  # atomic: two threads never get the same id
    except IndexError:
        _ready_ids.extend(_make_ids(_ID_BATCH))
        return _ready_ids.pop()


os.register_at_fork(after_in_child=_ready_ids.clear)


#: Keyword options a call or ``.s()`` may give to override the decorator's defaults.
RESERVED_OPTIONS = ('id', 'eta', 'delay', 'retries', 'retry_delay', 'retry_backoff',
                    'priority', 'expires', 'timeout')


class Task:
    """One call of a task function, with everything needed to run it anywhere.

    ``name`` is the function's name (as in Huey); ``registry_name`` is ``module.name``, the
    name task messages and bus events carry. ``tseq`` counts this task's events handed to
    a bus. ``final`` is set by the queue just before each signal: whether that signal ends
    the task's lifecycle.
    """

    def __init__(self, wrapper: 'TaskWrapper | None' = None, args: Iterable[Any] = (),
                 kwargs: dict[str, Any] | None = None, *, id: str | None = None,
                 name: str | None = None, registry_name: str | None = None,
                 eta: datetime.datetime | None = None, retries: int | None = None,
                 retry_delay: float | None = None, retry_backoff: float | None = None,
                 priority: int | None = None, expires: Any = None,
                 expires_at: datetime.datetime | None = None, timeout: float | None = None,
                 on_complete: 'Task | None' = None, on_error: 'Task | None' = None,
                 tseq: int | None = 0, chord: dict[str, Any] | None = None) -> None:
        defaults = wrapper.defaults if wrapper is not None else {}
        self.wrapper = wrapper
        self.id = id or new_task_id()
        self.name = name or (wrapper.name if wrapper else 'unknown')
        self.registry_name = registry_name or (wrapper.registry_name if wrapper else self.name)
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.eta = eta
        self.retries = defaults.get('retries', 0) if retries is None else retries
        self.retry_delay = defaults.get('retry_delay', 0) if retry_delay is None else retry_delay
        self.retry_backoff = (defaults.get('retry_backoff') if retry_backoff is None
                              else retry_backoff)
        self.priority = defaults.get('priority') if priority is None else priority
        self.expires = defaults.get('expires') if expires is None else expires
        self.expires_at = expires_at
        self.timeout = defaults.get('timeout') if timeout is None else timeout
        self.on_complete = on_complete
        self.on_error = on_error
        self.tseq = tseq
        self.chord = chord
        self.final = False
        #: Live revocations counted when this task was claimed (``None``: not known).
        self.revocations_seen: int | None = None
        #: ``time.monotonic()`` deadline while running with a timeout (Huey's ``_deadline``).
        self._deadline: float | None = None

    def sibling(self, args: tuple[Any, ...]) -> 'Task':
        """A new call of the same function with the same options: a fresh id, these
        positional arguments and no keyword arguments. Meant for a task not yet enqueued
        (``.map()`` makes its tasks this way, resolving the options once)."""
        task = object.__new__(type(self))
        fields = task.__dict__
        fields.update(self.__dict__)
        fields['id'] = new_task_id()
        fields['args'] = args
        fields['kwargs'] = {}
        return task

    def __repr__(self) -> str:
        return '%s: %s' % (self.registry_name, self.id)

    def __getattr__(self, name: str) -> Any:
        # Further keywords of the decorator read as task attributes, as Huey's do.
        wrapper = self.__dict__.get('wrapper')
        if wrapper is not None and name in wrapper.extra:
            return wrapper.extra[name]
        raise AttributeError('%r task has no attribute %r' % (type(self).__name__, name))

    def __eq__(self, other: object) -> bool:
        # As in Huey: the same id (and eta: a rescheduled copy is another run).
        if not isinstance(other, Task):
            return NotImplemented
        return self.id == other.id and self.eta == other.eta

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def expires_resolved(self) -> datetime.datetime | None:
        """Huey's name for ``expires_at``: the expiry as a datetime, fixed at first enqueue."""
        return self.expires_at

    @expires_resolved.setter
    def expires_resolved(self, value: datetime.datetime | None) -> None:
        self.expires_at = value

    def resolve_expires(self, utc: bool = True) -> datetime.datetime | None:
        """Fix ``expires`` (seconds or datetime) as a datetime, once; returns it."""
        if self.expires is not None and self.expires_at is None:
            self.expires_at = normalize_expires(self.expires, utc)
        return self.expires_at

    def create_id(self) -> str:
        """A new random task id (uuid4 string)."""
        return new_task_id()

    @property
    def data(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)``, as Huey's ``Task.data``."""
        return self.args, self.kwargs

    @property
    def periodic(self) -> bool:
        """Whether this is a periodic task (its results are never stored)."""
        return bool(self.wrapper is not None and self.wrapper.periodic)

    @property
    def context(self) -> bool:
        """Whether the function receives ``task=`` (a ``context=True`` task)."""
        return bool(self.wrapper is not None and self.wrapper.context)

    def then(self, task: 'Task | TaskWrapper', *args: Any, **kwargs: Any) -> 'Task':
        """Run ``task`` after this one succeeds, with this one's return value appended to
        its arguments (a wrapper becomes ``wrapper.s(*args, **kwargs)``; a task instance
        gets ``args``/``kwargs`` added to its own). Returns ``self`` for chaining."""
        if self.on_complete is not None:
            self.on_complete.then(task, *args, **kwargs)
        else:
            self.on_complete = signature(task, args, kwargs)
        return self

    def error(self, task: 'Task | TaskWrapper', *args: Any, **kwargs: Any) -> 'Task':
        """Run ``task`` after a failed attempt of this one (see ``store_intermediate_errors``),
        with the exception appended. Returns ``self``."""
        if self.on_error is not None:
            self.on_error.error(task, *args, **kwargs)
        else:
            self.on_error = signature(task, args, kwargs)
        return self

    def chain(self) -> list['Task']:
        """This task and the pipeline steps after it, in order."""
        steps: list[Task] = []
        step: Task | None = self
        while step is not None:
            steps.append(step)
            step = step.on_complete
        return steps

    def extend_data(self, data: Any) -> None:
        """Feed a previous step's output: a tuple spreads into the arguments, a dict into
        the keyword arguments, anything else is appended as one argument."""
        if data is None or data == ():
            return
        if isinstance(data, tuple):
            self.args += data
        elif isinstance(data, dict):
            for key, value in data.items():  # as in Huey: never override a given keyword
                self.kwargs.setdefault(key, value)
        else:
            self.args += (data,)

    def revoke(self, revoke_until: datetime.datetime | None = None,
               revoke_once: bool = False) -> None:
        """Revoke this task by id."""
        self._queue().revoke_by_id(self.id, revoke_until, revoke_once)

    def _queue(self) -> 'TaskQueue':
        if self.wrapper is None:
            raise ConfigurationError('task %s is not bound to a queue' % self.id)
        return self.wrapper.queue

    # -- timeouts ----------------------------------------------------------------
    def mark_started(self, now: float | None = None) -> None:
        """Record when execution started: with a ``timeout``, its deadline."""
        start = time.monotonic() if now is None else now
        self._deadline = start + self.timeout if self.timeout else None

    @property
    def time_remaining(self) -> float:
        """Seconds left before the timeout (never below 0); ``inf`` without a timeout or
        before the task started."""
        if not self._deadline:
            return float('inf')
        return max(0.0, self._deadline - time.monotonic())

    @property
    def is_timed_out(self) -> bool:
        """Whether the task has run past its ``timeout``."""
        if not self._deadline:
            return False
        return time.monotonic() >= self._deadline

    def check_timeout(self) -> None:
        """Raise ``TaskTimeout`` if the task has run past its ``timeout``."""
        if self.is_timed_out:
            raise TaskTimeout('task %s ran past its timeout of %ss' % (self.id, self.timeout))

    def execute(self) -> Any:
        """Call the function with this task's arguments."""
        if self.wrapper is None:
            from .exceptions import QueueError
            raise QueueError('no task named %r is registered in this process; is its module '
                             'imported by the consumer?' % self.registry_name)
        kwargs = dict(self.kwargs)
        if self.wrapper.context:
            kwargs['task'] = self
        return self.wrapper.func(*self.args, **kwargs)


def signature(task: 'Task | TaskWrapper', args: tuple[Any, ...] = (),
              kwargs: dict[str, Any] | None = None) -> Task:
    """A pipeline step or callback: ``wrapper.s(*args, **kwargs)``, or a task instance with
    ``args`` and ``kwargs`` added to its own (as Huey's ``then`` does)."""
    if not isinstance(task, Task):
        return task.s(*args, **(kwargs or {}))
    if args:
        task.extend_data(tuple(args))
    if kwargs:
        task.extend_data(dict(kwargs))
    return task


def split_options(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate the reserved per-call options from the function's own keyword arguments."""
    options = {key: kwargs.pop(key) for key in RESERVED_OPTIONS if key in kwargs}
    return kwargs, options


class TaskWrapper:
    """A decorated function: calling it enqueues a task and returns a result handle."""

    def __init__(self, queue: 'TaskQueue', func: Callable[..., Any], *, retries: int = 0,
                 retry_delay: float = 0, retry_backoff: float | None = None,
                 priority: int | None = None, context: bool = False, name: str | None = None,
                 expires: Any = None, timeout: float | None = None,
                 validate_datetime: Callable[[datetime.datetime], bool] | None = None,
                 **extra: Any) -> None:
        if isinstance(func, TaskWrapper):  # decorating a task again: wrap its function
            func = func.func
        if inspect.iscoroutinefunction(func):
            raise ConfigurationError(
                'task %s is a coroutine function; tasks run in worker processes without an '
                'event loop: wrap it with asyncio.run() in a regular function'
                % getattr(func, '__qualname__', func))
        _refuse_reserved_parameters(func)
        self.queue = queue
        self.func: Callable[..., Any] = func
        self.name: str = name or func.__name__
        self.registry_name: str = '%s.%s' % (func.__module__, self.name)
        self.context = context
        self.validate_datetime = validate_datetime
        self.periodic = validate_datetime is not None
        #: Further decorator keywords (Huey passes them to the task): readable as task attributes.
        self.extra = extra
        self.defaults: dict[str, Any] = dict(retries=retries, retry_delay=retry_delay,
                                             retry_backoff=retry_backoff, priority=priority,
                                             expires=expires, timeout=timeout)
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, '__name__', self.name)
        self.__wrapped__ = func

    def __repr__(self) -> str:
        return '<TaskWrapper %s>' % self.registry_name

    @property
    def huey(self) -> 'TaskQueue':
        """The queue this task belongs to (Huey's name for it)."""
        return self.queue

    @property
    def settings(self) -> dict[str, Any]:
        """The decorator's task options (``retries``, ``retry_delay``, …) and any further
        keywords it was given."""
        return dict(self.defaults, **self.extra)

    @property
    def retries(self) -> int:
        """Retries each call gets unless the call says otherwise."""
        return self.defaults['retries']

    @property
    def retry_delay(self) -> float:
        """Seconds between retries, by default."""
        return self.defaults['retry_delay']

    @property
    def retry_backoff(self) -> float | None:
        """Factor applied to ``retry_delay`` after each retry, by default."""
        return self.defaults['retry_backoff']

    @property
    def priority(self) -> int | None:
        """Default priority of this task's calls."""
        return self.defaults['priority']

    @property
    def expires(self) -> Any:
        """Default expiry (seconds or datetime) of this task's calls."""
        return self.defaults['expires']

    @property
    def timeout(self) -> float | None:
        """Default timeout in seconds of this task's calls."""
        return self.defaults['timeout']

    def unregister(self) -> bool:
        """Remove this task from its queue's registry; returns whether it was registered."""
        return self.queue.registry.unregister(self)

    def s(self, *args: Any, **kwargs: Any) -> Task:
        """Make a task for this call without enqueueing it (reserved options apply)."""
        if not kwargs:  # the common call: no options to pick out
            return Task(self, args)
        kwargs, options = split_options(kwargs)  # **kwargs is already this call's own dict
        return self._make(args, kwargs, options)

    def _make(self, args: Iterable[Any], kwargs: dict[str, Any] | None,
              options: dict[str, Any]) -> Task:
        if 'eta' in options or 'delay' in options:
            options['eta'] = self.queue.normalize_eta(options.pop('eta', None),
                                                      options.pop('delay', None))
        return Task(self, args, kwargs, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> 'Result | ResultGroup | None':
        """Enqueue a call; returns its result handle (``None`` with ``results=False``)."""
        return self.queue.enqueue(self.s(*args, **kwargs))

    def schedule(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
                 eta: datetime.datetime | None = None, delay: Any = None,
                 **options: Any) -> 'Result | ResultGroup | None':
        """Enqueue a call to run at ``eta`` or after ``delay`` seconds. As in Huey, a
        number, timedelta or datetime given alone as ``args`` is the delay or the eta, and
        a call with neither raises ``ValueError``."""
        unknown = set(options) - set(RESERVED_OPTIONS)
        if unknown:
            raise TypeError('schedule() got unexpected options: %s' % ', '.join(sorted(unknown)))
        if eta is None and delay is None:
            if isinstance(args, datetime.datetime):
                eta, args = args, None
            elif isinstance(args, (int, float, datetime.timedelta)) and not isinstance(
                    args, bool):
                delay, args = args, None
            else:
                raise ValueError('schedule() needs eta= or delay=')
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ValueError('schedule() kwargs must be a dict, not %r' % (kwargs,))
        if args is not None and not isinstance(args, Iterable):
            args = (args,)  # one plain value (with eta/delay given) is the only argument
        options.update(eta=eta, delay=delay)
        return self.queue.enqueue(self._make(args or (), kwargs, options))

    def map(self, iterable: Iterable[Any]) -> 'ResultGroup | None':
        """Enqueue one task per item (a tuple item is the positional arguments, anything else
        the single argument), in one storage round trip per batch."""
        first = Task(self)  # each task is a sibling of this one: the options resolved once
        tasks = [first.sibling(item if isinstance(item, tuple) else (item,))
                 for item in iterable]
        return self.queue.enqueue_many(tasks)

    def call_local(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here and now: no queue, no signals."""
        return self.func(*args, **kwargs)

    def revoke(self, revoke_until: datetime.datetime | None = None,
               revoke_once: bool = False) -> None:
        """Revoke every call of this task (until ``revoke_until``, or just the next one)."""
        self.queue.revoke_all(self.registry_name, revoke_until, revoke_once)

    def is_revoked(self, timestamp: datetime.datetime | None = None,
                   peek: bool = True) -> bool:
        """Whether calls of this task are revoked (``peek=False`` consumes a
        ``revoke_once`` revocation and clears a lapsed ``revoke_until``)."""
        return self.queue.is_revoked(self, timestamp, peek)

    def restore(self) -> bool:
        """Undo ``revoke``; returns whether a revocation was removed."""
        return self.queue.restore_all(self.registry_name)


def _refuse_reserved_parameters(func: Callable[..., Any]) -> None:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return
    clash = [name for name, param in params.items() if name in RESERVED_OPTIONS
             and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)]
    if clash:
        raise ConfigurationError(
            'task function %s has parameter(s) %s, which are reserved per-call options '
            '(%s); rename them' % (func.__qualname__, ', '.join(clash), ', '.join(RESERVED_OPTIONS)))
