"""``TaskQueue``: the facade users hold. It wires the parts together: registry, storage,
serializer, signals, hooks, executor; the behaviour lives in those modules."""
from __future__ import annotations

import datetime
import functools
import time
from typing import Any, Callable, ContextManager, Iterable

from . import quarantine
from . import signals as S
from .canvas import Chord, Group, enqueue_chord
from .clock import current_time, normalize_expires, normalize_time, to_timestamp
from .emitter import SignalEmitter
from .exceptions import ConfigurationError, SerializationError
from .execution import Executor, build_error_result
from .hooks import HookSet
from .locking import LOCK_PREFIX, RateLimit, TaskLock
from .message import task_from_map, task_to_map
from .registry import TaskRegistry
from .result import EMPTY, Result, ResultGroup
from .revocation import REVOCATIONS_COUNTER, Revocations
from .serializer import MsgpackSerializer
from .storage import MemoryStorage, Storage, storage_from_url
from .storage.base import InFlight
from .task import Task, TaskWrapper
from .tseq import encode_counted, uncount

MAP_BATCH = 1000

Handle = Result | ResultGroup | None


class TaskQueue:
    """A task queue: decorate functions with ``@q.task()``, call them to enqueue, run
    ``queue-consumer`` to execute them. See SPEC §1 for every option."""

    #: Store the error of an attempt that will be retried (Huey's option of that name).
    store_intermediate_errors = True

    def __init__(self, name: str = 'queue', storage: str | Storage | None = None, *,
                 results: bool = True, store_none: bool = False, utc: bool = True,
                 immediate: bool = False, serializer: Any = None,
                 result_ttl: float | None = None, bus: Any = None) -> None:
        self.name = name
        self.results = results
        self.store_none = store_none
        self.utc = utc
        self.result_ttl = result_ttl
        self.serializer = serializer if serializer is not None else MsgpackSerializer()
        self.storage = self._build_storage(storage)
        self.registry = TaskRegistry()
        self.pre_execute_hooks = HookSet('pre-execute')
        self.post_execute_hooks = HookSet('post-execute')
        self.startup_hooks = HookSet('startup')
        self.shutdown_hooks = HookSet('shutdown')
        self._emitter = SignalEmitter()
        self._locks: set[str] = set()
        self._executor = Executor(self)
        self._revocations = Revocations(self)
        self._immediate = False
        self._saved_storage: Storage | None = None
        if immediate:
            self.immediate = True
        if bus is not None:
            self.attach_bus(bus)

    def __repr__(self) -> str:
        return '<TaskQueue %s %s>' % (self.name, type(self.storage).__name__)

    def _build_storage(self, storage: str | Storage | None) -> Storage:
        if storage is None:
            return storage_from_url('sqlite:///%s.db' % self.name, self.name)
        if isinstance(storage, str):
            return storage_from_url(storage, self.name)
        if isinstance(storage, Storage):
            return storage
        raise ConfigurationError('storage must be a URL or a Storage object, not %r' % (storage,))

    # -- immediate mode ----------------------------------------------------------
    @property
    def immediate(self) -> bool:
        """Run tasks at once in the caller, against a fresh in-memory storage."""
        return self._immediate

    @immediate.setter
    def immediate(self, value: bool) -> None:
        if value and not self._immediate:
            self._saved_storage, self.storage = self.storage, MemoryStorage(self.name)
        elif not value and self._immediate and self._saved_storage is not None:
            self.storage, self._saved_storage = self._saved_storage, None
        self._immediate = bool(value)

    # -- decorators --------------------------------------------------------------
    def task(self, retries: int = 0, retry_delay: float = 0,
             retry_backoff: float | None = None, priority: int | None = None,
             context: bool = False, name: str | None = None, expires: Any = None,
             timeout: float | None = None,
             **kwargs: Any) -> Callable[[Callable[..., Any]], TaskWrapper]:
        """Decorator: the function becomes a task wrapper registered with this queue."""
        def decorator(func: Callable[..., Any]) -> TaskWrapper:
            wrapper = TaskWrapper(self, func, retries=retries, retry_delay=retry_delay,
                                  retry_backoff=retry_backoff, priority=priority,
                                  context=context, name=name, expires=expires,
                                  timeout=timeout, **kwargs)
            self.registry.register(wrapper)
            return wrapper
        return decorator

    def periodic_task(self, validate_datetime: Callable[[datetime.datetime], bool],
                      **options: Any) -> Callable[[Callable[..., Any]], TaskWrapper]:
        """Decorator: a task the consumer enqueues each minute ``validate_datetime`` accepts
        (e.g. a ``crontab``). Its results are never stored."""
        return self.task(validate_datetime=validate_datetime, **options)

    def context_task(self, obj: Any, as_argument: bool = False,
                     **task_options: Any) -> Callable[[Callable[..., Any]], TaskWrapper]:
        """Decorator: a task that runs inside ``with obj`` (its value passed first with
        ``as_argument=True``)."""
        def decorator(func: Callable[..., Any]) -> TaskWrapper:
            @functools.wraps(func)
            def inner(*args: Any, **kwargs: Any) -> Any:
                with obj as value:
                    return func(value, *args, **kwargs) if as_argument else func(*args, **kwargs)
            return self.task(**task_options)(inner)
        return decorator

    def signal(self, *signals: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register a handler for ``signals`` (every signal when none given)."""
        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self._emitter.handlers.connect(func, *signals)
            return func
        return decorator

    def disconnect_signal(self, receiver: Callable[..., Any], *signals: str) -> None:
        """Unregister a handler from ``signals`` (or from every signal)."""
        self._emitter.handlers.disconnect(receiver, *signals)

    def pre_execute(self, name: str | None = None) -> Callable[..., Any]:
        """Decorator: ``hook(task)`` before each task; raising ``CancelExecution`` cancels it."""
        return self.pre_execute_hooks.register(name)

    def post_execute(self, name: str | None = None) -> Callable[..., Any]:
        """Decorator: ``hook(task, value, exc)`` after each task."""
        return self.post_execute_hooks.register(name)

    def on_startup(self, name: str | None = None) -> Callable[..., Any]:
        """Decorator: ``hook()`` when each consumer worker starts."""
        return self.startup_hooks.register(name)

    def on_shutdown(self, name: str | None = None) -> Callable[..., Any]:
        """Decorator: ``hook()`` when each consumer worker stops."""
        return self.shutdown_hooks.register(name)

    def unregister_pre_execute(self, name_or_func: Any) -> bool:
        """Remove a pre-execute hook by name or function."""
        return self.pre_execute_hooks.unregister(name_or_func)

    def unregister_post_execute(self, name_or_func: Any) -> bool:
        """Remove a post-execute hook by name or function."""
        return self.post_execute_hooks.unregister(name_or_func)

    def unregister_on_startup(self, name_or_func: Any) -> bool:
        """Remove a startup hook by name or function."""
        return self.startup_hooks.unregister(name_or_func)

    def unregister_on_shutdown(self, name_or_func: Any) -> bool:
        """Remove a shutdown hook by name or function."""
        return self.shutdown_hooks.unregister(name_or_func)

    def run_startup_hooks(self) -> None:
        """Run every startup hook; failures are logged."""
        self.startup_hooks.run_isolated()

    def run_shutdown_hooks(self) -> None:
        """Run every shutdown hook; failures are logged."""
        self.shutdown_hooks.run_isolated()

    # -- locks and rate limits ---------------------------------------------------------
    def lock_task(self, name: str, ttl: float | None = None) -> TaskLock:
        """A lock (context manager or decorator); a task finding it held raises ``TaskLocked``."""
        self._locks.add(name)
        return TaskLock(self, name, ttl)

    def is_locked(self, name: str) -> bool:
        """Whether the lock ``name`` is held."""
        return self.storage.has_data_for_key(LOCK_PREFIX + name)

    def flush_locks(self, *names: str) -> set[str]:
        """Release the named locks and every lock this queue created; returns those held."""
        return {name for name in self._locks | set(names)
                if self.storage.delete_data(LOCK_PREFIX + name)}

    def rate_limit(self, name: str, limit: int, per: float, retry: bool = True) -> RateLimit:
        """At most ``limit`` runs per ``per`` seconds (context manager or decorator)."""
        return RateLimit(self, name, limit, per, retry)

    # -- signals and sinks (queue_core.emitter) ---------------------------------------------
    def add_signal_sink(self, sink: Callable[..., Any]) -> None:
        """Call ``sink(signal, task, exc, source)`` for every signal, before local handlers."""
        self._emitter.add_sink(sink)

    def remove_signal_sink(self, sink: Callable[..., Any]) -> None:
        """Stop calling ``sink``."""
        self._emitter.remove_sink(sink)

    def attach_bus(self, bus: Any) -> Any:
        """Publish every signal to a signal bus (an ingest endpoint or a bus config)."""
        from .bus_adapter import bus_publisher
        publisher, new = bus_publisher(self._emitter.sinks, bus, self.name)
        if new:
            self.add_signal_sink(publisher)
        return publisher

    def coalesce_signals(self, deferred: bool = False) -> None:
        """Ask the sinks that can (a bus publisher) to batch this thread's events; the
        caller then calls ``flush_signal_sinks()`` before it blocks waiting for work, and
        with ``deferred`` also at ``signal_sinks_deadline()`` while a task's code runs."""
        self._emitter.coalesce(deferred)

    def signal_sinks_deadline(self) -> float | None:
        """The earliest time (``time.monotonic``) a sink wants ``flush_signal_sinks()``
        called for this thread, or None."""
        return self._emitter.deadline()

    def flush_signal_sinks(self) -> None:
        """Send at once what any sink holds for this thread (a coalescing publisher)."""
        self._emitter.flush()

    @property
    def source(self) -> str:
        """Where events emitted by this thread come from (``app`` unless set)."""
        return self._emitter.source

    def emitting_as(self, source: str) -> ContextManager[None]:
        """Within the block, events from this thread carry ``source``."""
        return self._emitter.emitting_as(source)

    def emit(self, signal: str, task: Task, exc: BaseException | None = None, *,
             final: bool = False, bump: bool = True) -> None:
        """Hand a signal to the sinks (counting ``task.tseq``), then to local handlers."""
        self._emitter.emit(signal, task, exc, final=final, bump=bump)

    # -- serialization -----------------------------------------------------------------
    def serialize_task(self, task: Task) -> bytes:
        """The task message as bytes; ``SerializationError`` names the task and argument."""
        try:
            return self.serializer.serialize(task_to_map(task))
        except SerializationError as exc:
            raise SerializationError(_culprit(self.serializer, task, exc)) from exc

    def deserialize_task(self, data: bytes) -> Task:
        """A task from its message bytes."""
        return task_from_map(self.serializer.deserialize(data), self.registry.lookup)

    def build_error_result(self, task: Task, exc: BaseException) -> dict[str, Any]:
        """The metadata stored for a failure (override to add to it, as in Huey)."""
        return build_error_result(task, exc)

    def copy_task(self, task: Task) -> Task:
        """An independent copy of ``task`` (same id)."""
        return task_from_map(task_to_map(task), self.registry.lookup)

    def _encode_for_write(self, task: Task) -> bytes:
        """The message to store, its ``tseq`` counting the event that will announce it."""
        if task.expires is not None and task.expires_at is None:
            task.expires_at = normalize_expires(task.expires, self.utc)
        return encode_counted(task, self._emitter.counting, self.serialize_task)

    def _decode(self, data: bytes) -> Task | None:
        """The task, or ``None`` once an unusable message was quarantined."""
        return quarantine.decode(self, data)

    # -- enqueueing ----------------------------------------------------------------------
    def enqueue(self, item: Task | Chord | Group) -> Any:
        """Put a task (with its pipeline), a group or a chord on the queue."""
        if isinstance(item, Chord):
            return enqueue_chord(self, item)
        if isinstance(item, Group):
            handles = [self.enqueue(member) for member in item.tasks]
            return ResultGroup(handles) if self.results else None
        task = item
        data = self._encode_for_write(task)
        if self._immediate:
            self.emit(S.SIGNAL_ENQUEUED, task, bump=False)
            self.execute(self.deserialize_task(data))
            return self._handle(task)
        try:
            self.storage.enqueue(data, task.priority or 0)
        except Exception:
            uncount(task, self._emitter.counting)
            raise
        self.emit(S.SIGNAL_ENQUEUED, task, bump=False)
        return self._handle(task)

    def enqueue_many(self, tasks: Iterable[Task]) -> ResultGroup | None:
        """Enqueue many tasks in one storage round trip per batch of 1,000."""
        tasks = list(tasks)
        if self._immediate:
            handles = [self.enqueue(task) for task in tasks]
            return ResultGroup(handles) if self.results else None
        for start in range(0, len(tasks), MAP_BATCH):
            batch = tasks[start:start + MAP_BATCH]
            self.storage.enqueue_many([(self._encode_for_write(task), task.priority or 0)
                                       for task in batch])
            if self._emitter.wants(S.SIGNAL_ENQUEUED):  # else there is no one to tell
                for task in batch:
                    self.emit(S.SIGNAL_ENQUEUED, task, bump=False)
        return ResultGroup([Result(self, task) for task in tasks]) if self.results else None

    def _handle(self, task: Task) -> Handle:
        if not self.results:
            return None
        if task.on_complete is not None:
            return ResultGroup([Result(self, step) for step in task.chain()])
        return Result(self, task)

    def add_schedule(self, task: Task) -> None:
        """Put ``task`` on the schedule for its ``eta``; emits ``SCHEDULED``."""
        data = self._encode_for_write(task)
        try:
            self.storage.add_to_schedule(data, to_timestamp(task.eta or self.now(), self.utc))
        except Exception:
            uncount(task, self._emitter.counting)
            raise
        self.emit(S.SIGNAL_SCHEDULED, task, bump=False)

    # -- executing -------------------------------------------------------------------
    def now(self) -> datetime.datetime:
        """The current time in the queue's clock (naive; UTC unless ``utc=False``)."""
        return current_time(self.utc)

    def normalize_eta(self, eta: datetime.datetime | None = None, delay: Any = None,
                      now: datetime.datetime | None = None) -> datetime.datetime | None:
        """An ``eta``/``delay`` option as a naive datetime in the queue's clock, or ``None``."""
        if eta is None and delay is None:
            return None
        return normalize_time(eta, delay, utc=self.utc, now=now)

    def dequeue(self) -> Task | None:
        """Pop the next task (no in-flight record; the consumer uses ``claim``)."""
        while True:
            data = self.storage.dequeue()
            if data is None:
                return None
            task = self._decode(data)
            if task is not None:
                return task

    def execute(self, task: Task, timestamp: datetime.datetime | None = None, *,
                requeue_interrupted: bool = False) -> Any:
        """Run ``task`` through the whole lifecycle (SPEC §2); returns its value or ``None``.
        ``requeue_interrupted`` (the consumer's ``--requeue-interrupted``) puts a task cut
        short by shutdown back on the queue instead of ending it."""
        return self._executor.execute(task, timestamp or self.now(), requeue_interrupted)

    def ready_to_run(self, task: Task, timestamp: datetime.datetime | None = None) -> bool:
        """Whether ``task`` has no eta or its eta has come."""
        return task.eta is None or task.eta <= (timestamp or self.now())

    def read_schedule(self, timestamp: datetime.datetime | None = None) -> list[Task]:
        """Remove and return the scheduled tasks due at ``timestamp``."""
        ts = to_timestamp(timestamp or self.now(), self.utc)
        return [task for data in self.storage.read_schedule(ts)
                if (task := self._decode(data)) is not None]

    def enqueue_due(self, timestamp: datetime.datetime | None = None) -> list[Task]:
        """Move the scheduled tasks due at ``timestamp`` onto the queue (``ENQUEUED`` for
        each), entry by entry: each move is one atomic storage step that happens once, so
        several schedulers, or a retry after a lost reply, never lose or double a task."""
        moved = []
        for ref, data in self.storage.due_items(to_timestamp(timestamp or self.now(),
                                                             self.utc)):
            task = self._decode(data)
            if task is None:
                self.storage.move_to_queue(ref, None)
                continue
            if self.storage.move_to_queue(ref, self._encode_for_write(task),
                                          task.priority or 0):
                self.emit(S.SIGNAL_ENQUEUED, task, bump=False)
                moved.append(task)
        return moved

    def read_periodic(self, timestamp: datetime.datetime) -> list[Task]:
        """New tasks for the periodic tasks whose schedule matches ``timestamp``."""
        return self.registry.periodic_due(timestamp)

    # -- in-flight work (the consumer) -----------------------------------------------------
    def claim(self, owner: str, lease: float = 30.0,
              release: str | None = None) -> tuple[Task, str] | None:
        """Pop the next task and record it in flight for ``owner``; ``(task, token)``.

        ``release`` is the token of the claimer's previous, finished task: its record is
        dropped in the same storage round trip (also when the queue is empty)."""
        while True:
            record = self.storage.claim(owner, time.time() + lease, release=release,
                                        counter=REVOCATIONS_COUNTER)
            if record is None:
                return None
            task = self._decode(record.data)
            if task is not None:
                # Read with the claim: with no live revocation the lookups can be skipped.
                task.revocations_seen = record.counter
                return task, record.token
            release = record.token

    def claim_many(self, owner: str, lease: float = 30.0, limit: int = 1,
                   release: Iterable[str] = ()) -> list[tuple[Task, str]]:
        """Pop up to ``limit`` tasks at once (prefetch), each recorded in flight for
        ``owner`` with its own token, in queue order; ``release`` names finished records
        to drop in the same round trip. Undecodable messages are quarantined and left out."""
        records = self.storage.claim_many(owner, time.time() + lease, limit,
                                          release=tuple(release), counter=REVOCATIONS_COUNTER)
        claimed = []
        for record in records:
            task = self._decode(record.data)
            if task is None:
                self.storage.release(record.token)
                continue
            task.revocations_seen = record.counter
            claimed.append((task, record.token))
        return claimed

    def release(self, token: str) -> None:
        """Drop an in-flight record once its task reached a final state (or was handed on)."""
        self.storage.release(token)

    def renew_leases(self, owner: str, lease: float = 30.0) -> int:
        """Extend every lease ``owner`` holds."""
        return self.storage.renew(owner, time.time() + lease)

    def recover(self, record: InFlight, requeue: bool = False,
                owner: str | None = None) -> bool:
        """Report an abandoned in-flight task (``consumer.recovery.recover_record``)."""
        from .consumer.recovery import recover_record  # the consumer imports this module
        return recover_record(self, record, requeue, owner)

    def in_flight(self) -> list[dict[str, Any]]:
        """Tasks taken by workers and not yet final, with owner and lease."""
        rows = []
        for record in self.storage.in_flight():
            task = self._peek_task(record.data)
            rows.append({'id': task.id if task else None,
                         'name': task.registry_name if task else None,
                         'owner': record.owner, 'lease_until': record.lease_until,
                         'token': record.token})
        return rows

    def _peek_task(self, data: bytes) -> Task | None:
        try:
            return self.deserialize_task(data)
        except Exception:
            return None

    # -- revocation (queue_core.revocation) -------------------------------------------------
    def revoke_by_id(self, id: str, revoke_until: datetime.datetime | None = None,
                     revoke_once: bool = False) -> None:
        """Revoke the task with this id (until ``revoke_until``, or once)."""
        self._revocations.revoke(id, revoke_until, revoke_once)

    def revoke(self, task: Task, revoke_until: datetime.datetime | None = None,
               revoke_once: bool = False) -> None:
        """Revoke this task instance (by its id), as Huey's ``revoke(task)``."""
        self._revocations.revoke(task.id, revoke_until, revoke_once)

    def restore(self, task: Task) -> bool:
        """Undo ``revoke(task)``; returns whether a revocation was removed."""
        return self._revocations.restore(task.id)

    def revoke_all(self, registry_name: str | TaskWrapper,
                   revoke_until: datetime.datetime | None = None,
                   revoke_once: bool = False) -> None:
        """Revoke every task of this registry name (or task wrapper)."""
        self._revocations.revoke(_registry_name(registry_name), revoke_until, revoke_once)

    def restore_by_id(self, id: str) -> bool:
        """Undo a revocation by id; returns whether one was removed."""
        return self._revocations.restore(id)

    def restore_all(self, registry_name: str | TaskWrapper) -> bool:
        """Undo a revocation of every task of this name (or task wrapper)."""
        return self._revocations.restore(_registry_name(registry_name))

    def is_revoked(self, task: Any, timestamp: datetime.datetime | None = None,
                   peek: bool = True) -> bool:
        """Whether a task (by object, wrapper, id or registry name) is revoked; with
        ``peek=False`` a ``revoke_once`` revocation is consumed."""
        if isinstance(task, Result):
            task = task.task
        if isinstance(task, Task):
            names = [task.id, task.registry_name]
        elif isinstance(task, TaskWrapper):
            names = [task.registry_name]
        else:
            names = [str(task)]
        return self._revocations.any_revoked(names, timestamp, peek)

    # -- results and key/value data -----------------------------------------------------
    def put_result(self, key: str, value: Any) -> None:
        """Store a task's result (expiring after ``result_ttl`` when set)."""
        self.storage.put_data(key, self.serializer.serialize(value), ttl=self.result_ttl)

    def read_result(self, key: str, preserve: bool = False) -> Any:
        """The stored value under ``key`` (removed unless ``preserve``), or ``EMPTY``."""
        data = self.storage.peek_data(key) if preserve else self.storage.pop_data(key)
        return EMPTY if data is None else self.serializer.deserialize(data)

    def result(self, id: str, blocking: bool = False, timeout: float | None = None,
               backoff: float = 1.15, max_delay: float = 1.0,
               revoke_on_timeout: bool = False, preserve: bool = False) -> Any:
        """The result of the task with this id (see ``Result.get``)."""
        handle = Result(self, Task(None, id=id))
        return handle.get(blocking, timeout, backoff, max_delay, revoke_on_timeout, preserve)

    def put(self, key: str, value: Any) -> None:
        """Store any serializable value under ``key``."""
        self.storage.put_data(key, self.serializer.serialize(value))

    def get(self, key: str, peek: bool = False) -> Any:
        """The value under ``key`` (removed unless ``peek``), or ``None``."""
        value = self.read_result(key, preserve=peek)
        return None if value is EMPTY else value

    def put_if_empty(self, key: str, value: Any) -> bool:
        """Store ``value`` only if ``key`` is empty; returns whether it was stored."""
        return self.storage.put_if_empty(key, self.serializer.serialize(value))

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it held something."""
        return self.storage.delete_data(key)

    def all_results(self) -> dict[str, Any]:
        """Every key and decoded value of the result store."""
        items = {}
        for key, data in self.storage.result_items().items():
            try:
                items[key] = self.serializer.deserialize(data)
            except SerializationError:
                items[key] = data
        return items

    # -- inspection ---------------------------------------------------------------------
    def pending(self, limit: int | None = None) -> list[Task]:
        """The queued tasks, in dequeue order."""
        return [t for d in self.storage.enqueued_items(limit) if (t := self._peek_task(d))]

    def pending_count(self) -> int:
        """How many tasks are queued (one cheap storage call)."""
        return self.storage.queue_size()

    def scheduled(self, limit: int | None = None) -> list[Task]:
        """The scheduled tasks, by eta."""
        return [t for d in self.storage.scheduled_items(limit) if (t := self._peek_task(d))]

    def scheduled_count(self) -> int:
        """How many tasks are on the schedule."""
        return self.storage.schedule_size()

    def result_count(self) -> int:
        """How many keys the result store holds (one cheap storage call)."""
        return self.storage.result_store_size()

    def __len__(self) -> int:
        return self.pending_count()

    def flush(self) -> None:
        """Remove everything this queue keeps in storage."""
        self.storage.flush_all()

    def close(self) -> None:
        """Flush and close attached sinks (bus publishers) and the storage's connections.

        The queue stays usable: the storage reconnects on next use."""
        self._emitter.close_sinks()
        self.storage.close()


def _registry_name(name_or_wrapper: str | TaskWrapper) -> str:
    """A registry name given as itself or as its task wrapper."""
    return str(getattr(name_or_wrapper, 'registry_name', name_or_wrapper))


def _culprit(serializer: Any, task: Task, exc: SerializationError) -> str:
    """Say which argument of ``task`` could not be serialized."""
    for index, value in enumerate(task.args):
        try:
            serializer.serialize(value)
        except SerializationError as inner:
            return 'cannot enqueue task %s: argument %d (%s) cannot be serialized: %s' % (
                task.registry_name, index, type(value).__name__, inner)
    for key, value in task.kwargs.items():
        try:
            serializer.serialize(value)
        except SerializationError as inner:
            return 'cannot enqueue task %s: keyword argument %r (%s) cannot be serialized: %s' % (
                task.registry_name, key, type(value).__name__, inner)
    return 'cannot enqueue task %s: %s' % (task.registry_name, exc)
