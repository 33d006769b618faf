"""The scheduler: moves due tasks onto the queue and enqueues periodic tasks.

It runs as a thread of the supervisor. Its clock is injectable (``now``), so tests
drive it through minutes without waiting for them.
"""
from __future__ import annotations

import datetime
import logging
import threading
from typing import Any, Callable

from ..exceptions import StorageError
from ..signals import SOURCE_SCHEDULER
from .backoff import Backoff, StopFlag
from .config import ConsumerConfig
from .queue_protocol import SchedulerQueue

logger = logging.getLogger('queue_core.consumer')

#: How long the once-per-minute guard of a periodic task is kept, in seconds.
PERIODIC_GUARD_TTL = 3600


def default_now(queue: SchedulerQueue) -> Callable[[], datetime.datetime]:
    """The queue's notion of "now": naive UTC with ``utc=True``, naive local time otherwise."""
    if getattr(queue, 'utc', True):
        return lambda: datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return datetime.datetime.now


def periodic_guard_key(task: Any, minute: datetime.datetime) -> str:
    """The storage key that lets exactly one scheduler enqueue ``task`` for ``minute``."""
    name = getattr(task, 'registry_name', None) or task.name
    return 'periodic:%s:%s' % (name, minute.strftime('%Y%m%d%H%M'))


class Scheduler:
    """Every ``config.scheduler_interval`` seconds: enqueue due scheduled tasks; at each
    new minute, enqueue the periodic tasks whose crontab matches it (unless ``-n``).

    Several schedulers may share one storage: ``enqueue_due`` moves each due task to the
    queue in one atomic step that happens once, and a periodic task is enqueued only by
    the scheduler that wins ``put_if_empty('periodic:<name>:<YYYYmmddHHMM>')``. Periodic
    tasks not yet enqueued (because the storage failed in between) are kept and enqueued
    first on the next tick.
    """

    def __init__(self, queue: SchedulerQueue, config: ConsumerConfig,
                 now: Callable[[], datetime.datetime] | None = None,
                 stop: StopFlag | None = None) -> None:
        self.queue = queue
        self.config = config
        self.now = now or default_now(queue)
        self.stop = stop or StopFlag()
        self._pending: list[Any] = []
        self._last_minute: datetime.datetime | None = None
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """One round. Raises ``StorageError`` if the storage fails (``run`` retries)."""
        now = self.now()
        with self.queue.emitting_as(SOURCE_SCHEDULER):
            self._enqueue_pending()
            self.queue.enqueue_due(now)
            if self.config.periodic:
                self._periodic(now)

    def _enqueue_pending(self) -> None:
        while self._pending:
            task = self._pending[0]
            self.queue.enqueue(task)
            self._pending.pop(0)

    def _periodic(self, now: datetime.datetime) -> None:
        minute = now.replace(second=0, microsecond=0)
        if minute == self._last_minute:
            return
        for task in self.queue.read_periodic(minute):
            key = periodic_guard_key(task, minute)
            if self.queue.storage.put_if_empty(key, b'1', ttl=PERIODIC_GUARD_TTL):
                logger.info('enqueueing periodic task %s for %s', task.name,
                            minute.strftime('%Y-%m-%d %H:%M'))
                self._pending.append(task)
        self._last_minute = minute
        self._enqueue_pending()

    def run(self) -> None:
        """Tick until ``stop`` is set, riding out storage outages with backoff."""
        backoff = Backoff(self.stop, self.config.backoff_initial, self.config.backoff_max,
                          self.config.backoff_factor)
        while not self.stop.is_set():
            try:
                self.tick()
            except StorageError as exc:
                backoff.failed('running the scheduler', exc)
                continue
            except Exception:
                logger.exception('scheduler tick failed; trying again')
            else:
                backoff.succeeded()
            self.stop.wait(self.config.scheduler_interval)

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name='queue-scheduler', daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Stop and wait for the thread."""
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
