"""Huey's ``Huey`` classes as ``TaskQueue`` subclasses with Huey's constructor arguments,
and the other names applications import from ``huey.api``.

``Huey(name)`` with no storage class means Redis on localhost, as in Huey. Where Huey and
``queue_core`` differ (msgpack by default, ``ENQUEUED`` after the write, the final-events
table, process workers by default) ``queue_core`` wins; the README lists each difference.
"""
from __future__ import annotations

from typing import Any

from ..api import TaskQueue
from ..canvas import chord, group
from ..consumer.config import ConsumerConfig
from ..crontab import crontab
from ..exceptions import CancelExecution, ConfigurationError, RetryTask
from ..locking import RateLimit, TaskLock
from ..result import EMPTY, ChordResult, Result, ResultGroup
from ..serializer import MsgpackSerializer
from ..task import Task, TaskWrapper
from ..values import SKIPPED, Error
from .constants import EmptyData
from .serializer import Compressed
from .storage import MemoryStorage, RedisStorage, SqliteStorage

#: Huey's ``create_consumer`` option names and the ``ConsumerConfig`` field each sets.
CONSUMER_OPTIONS = {
    'workers': 'workers', 'worker_type': 'worker_type', 'periodic': 'periodic',
    'initial_delay': 'backoff_initial', 'backoff': 'backoff_factor',
    'max_delay': 'backoff_max', 'scheduler_interval': 'scheduler_interval',
    'health_check_interval': 'health_check_interval', 'flush_locks': 'flush_locks',
    'extra_locks': 'extra_locks', 'max_tasks': 'max_tasks',
    'shutdown_timeout': 'shutdown_timeout', 'graceful_signal': 'graceful_signal',
    'bus': 'bus', 'broker': 'broker', 'lease': 'lease',
    'requeue_interrupted': 'requeue_interrupted',
}


class _PeriodicCheck(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, Task) and obj.periodic


class PeriodicTask(Task, metaclass=_PeriodicCheck):
    """For ``isinstance(task, PeriodicTask)`` as in Huey: true of a periodic task's runs."""


def consumer_config(**options: Any) -> ConsumerConfig:
    """A ``ConsumerConfig`` from Huey's ``Consumer`` keyword options (plus ours: ``bus``,
    ``broker``, ``lease``, ``requeue_interrupted``). ``check_worker_health=False`` turns
    the stuck-worker check off; ``extra_locks`` is a list or a comma-separated string."""
    if options.pop('check_worker_health', True) is False:
        options['health_check_interval'] = None
    unknown = sorted(set(options) - set(CONSUMER_OPTIONS))
    if unknown:
        raise ConfigurationError('unknown consumer option(s): %s; known: %s'
                                 % (', '.join(unknown), ', '.join(sorted(CONSUMER_OPTIONS))))
    locks = options.get('extra_locks')
    if isinstance(locks, str):
        options['extra_locks'] = tuple(n.strip() for n in locks.split(',') if n.strip())
    elif locks is not None:
        options['extra_locks'] = tuple(locks)
    return ConsumerConfig(**{CONSUMER_OPTIONS[key]: value for key, value in options.items()})


class Huey(TaskQueue):
    """``TaskQueue`` built with Huey's arguments. Storage comes from ``storage_class``
    (Redis on localhost when none is set, as in Huey) called as
    ``storage_class(name, **storage_kwargs)``; ``storage=`` (a URL or storage object)
    may be given instead. ``compression`` compresses the (msgpack) payloads;
    ``immediate_use_memory=False`` keeps the real storage in immediate mode."""

    storage_class: Any = None

    def __init__(self, name: str = 'huey', results: bool = True, store_none: bool = False,
                 utc: bool = True, immediate: bool = False, serializer: Any = None,
                 compression: bool = False, use_zlib: bool = False,
                 immediate_use_memory: bool = True, storage_class: Any = None,
                 store_intermediate_errors: bool = True, *, storage: Any = None,
                 result_ttl: float | None = None, bus: Any = None,
                 **storage_kwargs: Any) -> None:
        if storage_class is not None:
            self.storage_class = storage_class
        self.storage_kwargs = storage_kwargs
        self.immediate_use_memory = immediate_use_memory
        self.store_intermediate_errors = store_intermediate_errors
        if serializer is None and compression:
            serializer = Compressed(MsgpackSerializer(), use_zlib=use_zlib)
        if storage is None:
            storage = self._storage_for(name, storage_kwargs)
        super().__init__(name, storage, results=results, store_none=store_none, utc=utc,
                         serializer=serializer, result_ttl=result_ttl, bus=bus)
        if immediate:
            self.immediate = True

    def _storage_for(self, name: str, kwargs: dict[str, Any]) -> Any:
        factory = self.storage_class or RedisStorage
        return factory(name, **kwargs)

    def get_storage(self, **kwargs: Any) -> Any:
        """A new storage object of this queue's storage class (Huey's ``get_storage``)."""
        return self._storage_for(self.name, dict(self.storage_kwargs, **kwargs))

    def create_storage(self) -> Any:
        """The storage this queue would use now (memory in immediate mode)."""
        if self._immediate and self.immediate_use_memory:
            return self.get_immediate_storage()
        return self.get_storage()

    def put_if_empty(self, key: str, data: Any, ttl: float | None = None) -> bool:
        """Store ``data`` under ``key`` unless it holds something (expiring after ``ttl``
        seconds when given); returns whether it was stored."""
        return self.storage.put_if_empty(key, self.serializer.serialize(data), ttl)

    def get_raw(self, key: str, peek: bool = False) -> Any:
        """The stored bytes under ``key`` (removed unless ``peek``), or ``EmptyData``."""
        data = self.storage.peek_data(key) if peek else self.storage.pop_data(key)
        return EmptyData if data is None else data

    def get_immediate_storage(self) -> Any:
        """The storage immediate mode uses: a fresh in-memory one."""
        return MemoryStorage(self.name)

    def create_consumer(self, **options: Any) -> Any:
        """A consumer for this queue (``Supervisor``) from Huey's consumer options; call
        ``.run()`` on it. Workers are processes unless ``worker_type='thread'``."""
        from ..consumer.supervisor import Supervisor
        return Supervisor(self, consumer_config(**options))

    @property
    def immediate(self) -> bool:
        """Run tasks at once in the caller (against memory unless
        ``immediate_use_memory=False``)."""
        return self._immediate

    @immediate.setter
    def immediate(self, value: bool) -> None:
        if self.immediate_use_memory:
            TaskQueue.immediate.fset(self, value)  # type: ignore[attr-defined]
        else:
            self._immediate = bool(value)

    def __bool__(self) -> bool:
        # As in Huey: an empty queue is still a true object (``__len__`` counts tasks).
        return True


class MemoryHuey(Huey):
    """In-process storage: for tests and immediate mode; thread workers only."""
    storage_class = MemoryStorage


class SqliteHuey(Huey):
    """A SQLite file: ``SqliteHuey(name, filename='huey.db', timeout=5, fsync=False)``."""
    storage_class = staticmethod(SqliteStorage)


class RedisHuey(Huey):
    """Redis: ``RedisHuey(name, host=, port=, db=, password=, url=, connection_pool=, …)``."""
    storage_class = staticmethod(RedisStorage)


class PriorityRedisHuey(RedisHuey):
    """Redis with task priorities (every ``queue_core`` storage honours priority)."""


class RedisExpireHuey(RedisHuey):
    """Redis whose results expire after ``expire_time`` seconds (default a day) and, as
    in Huey, are not removed when read."""

    def __init__(self, name: str = 'huey', *args: Any, expire_time: float = 86400,
                 **kwargs: Any) -> None:
        self.expire_time = expire_time
        kwargs.setdefault('result_ttl', expire_time)
        super().__init__(name, *args, **kwargs)

    def read_result(self, key: str, preserve: bool = False) -> Any:
        """The stored value under ``key``, left in place until it expires."""
        return super().read_result(key, preserve=True)


__all__ = ['Huey', 'MemoryHuey', 'SqliteHuey', 'RedisHuey', 'PriorityRedisHuey',
           'RedisExpireHuey', 'crontab', 'group', 'chord', 'Task', 'TaskWrapper', 'Result',
           'ResultGroup', 'ChordResult', 'TaskLock', 'RateLimit', 'Error', 'SKIPPED',
           'PeriodicTask',
           'CancelExecution', 'RetryTask', 'EMPTY', 'consumer_config']
