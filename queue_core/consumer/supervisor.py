"""The supervisor: starts the workers and the scheduler, replaces dead or stuck workers,
recovers abandoned in-flight tasks, and turns OS signals into shutdown and restart.

Signals: SIGINT graceful stop (a second SIGINT escalates to an immediate stop), SIGTERM
immediate stop (the other way round with ``graceful_signal='TERM'``, Huey's ``-g TERM``), SIGHUP graceful restart: every worker finishes its task and is replaced,
or, with ``reexec_on_hup`` (as ``queue-consumer`` runs it, like Huey's consumer), the
whole consumer stops gracefully and ``run()`` returns with ``reexec_requested`` set so the
caller executes the program again and new code is loaded; a broker hosted with
``--broker`` is left running then, for the new image to adopt.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from multiprocessing.connection import wait
from typing import Any, Callable

from ..exceptions import ConfigurationError, StorageError
from ..storage.memory import MemoryStorage
from .beacon import ConsumerBeacon
from .broker_host import EmbeddedBroker
from .config import WORKER_PROCESS, ConsumerConfig
from .pool import ProcessHandle, ThreadHandle
from .process import SharedFlags, close_queue
from .queue_protocol import ConsumerQueue
from .recovery import recover_owners, sweep_abandoned
from .scheduler import Scheduler

logger = logging.getLogger('queue_core.consumer')

#: Longest the supervisor sleeps between looks at its workers, in seconds.
TICK = 0.5
#: After an immediate stop is requested, workers still alive this much later are killed.
KILL_AFTER = 10.0
_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Supervisor:
    """Runs one consumer until it is told to stop; ``run()`` returns the exit status."""

    def __init__(self, queue: ConsumerQueue, config: ConsumerConfig,
                 scheduler_now: Callable[[], Any] | None = None) -> None:
        self.queue = queue
        self.config = config
        self.scheduler = Scheduler(queue, config, now=scheduler_now)
        self.workers: list[Any] = []
        self._flags = SharedFlags()
        self.broker: EmbeddedBroker | None = None
        self.beacon: ConsumerBeacon | None = None
        #: Set by ``queue-consumer``: SIGHUP re-executes the consumer instead of
        #: restarting the workers only; ``reexec_requested`` tells the caller to do it.
        self.reexec_on_hup = False
        self.reexec_requested = False
        self.stopping = False
        self.terminating = False
        self._pid = os.getpid()
        self._wake_r = self._wake_w = -1
        self._old_handlers: dict[int, Any] = {}
        self._next_index = 0
        self._starts_due: list[float] = []
        self._quick_deaths = 0
        self._stop_deadline: float | None = None
        self._kill_deadline: float | None = None
        self._next_sweep = 0.0
        self._next_health = 0.0

    # -- setup -------------------------------------------------------------------
    def check(self) -> None:
        """Raise ``ConfigurationError`` for a configuration that cannot work."""
        if self.config.worker_type == WORKER_PROCESS and isinstance(self.queue.storage,
                                                                    MemoryStorage):
            raise ConfigurationError('memory:// storage cannot be shared between processes; '
                                     'use sqlite:/// or redis:// storage, or thread workers '
                                     '(-k thread)')
        if self.config.bus or self.config.broker:
            from ..bus_adapter import DEFAULT_INGEST, check_bus
            check_bus(self.config.bus, self.config.broker)
            self._bus_config(self.config.bus or DEFAULT_INGEST)

    def _prepare(self) -> None:
        if getattr(self.queue.storage, 'enqueue_spin', None):
            # The consumer's own enqueues (retries, pipeline steps, due tasks) wait for
            # their replies asleep: its CPU belongs to the tasks (see RedisStorage).
            setattr(self.queue.storage, 'enqueue_spin', 0.0)
        if self.config.flush_locks or self.config.extra_locks:
            flushed = self.queue.flush_locks(*self.config.extra_locks)
            logger.info('flushed task locks: %s', ', '.join(sorted(flushed)) or '(none held)')
        bus = self.config.bus
        if self.config.broker:
            self.broker = EmbeddedBroker(bus)
            self.broker.start()
            bus = self.broker.ingest
        if bus:
            self.queue.attach_bus(self._bus_config(bus))
            logger.info('publishing signals to %s', bus)
            self.beacon = ConsumerBeacon(self._bus_config(bus), self.queue.name,
                                         self.config.workers)
            self.beacon.start()

    def _bus_config(self, ingest: str) -> Any:
        """The bus to publish to: ``ingest``, with the configured CURVE keys if any."""
        from ..bus_adapter import consumer_bus
        return consumer_bus(ingest, self.config.curve_server_key, self.config.curve_keypair)

    def _install_signals(self) -> None:
        # Handlers only write the signal number to this pipe; the main loop reads it.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        for signum in _HANDLED:
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signals(self) -> None:
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers.clear()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _on_signal(self, signum: int, frame: Any) -> None:
        # A forked child runs this handler until it installs its own: ignore it there.
        if os.getpid() == self._pid:
            try:
                os.write(self._wake_w, bytes([signum]))
            except BlockingIOError:
                pass

    # -- running -----------------------------------------------------------------
    def run(self) -> int:
        """Start everything, supervise until stopped, clean up; return the exit status."""
        self.check()
        try:
            self._prepare()
            self._install_signals()
            logger.info('consumer started: %d %s worker(s), lease %ss, storage %s',
                        self.config.workers, self.config.worker_type, self.config.lease,
                        type(self.queue.storage).__name__)
            self._log_tasks()
            self._sweep()
            for _ in range(self.config.workers):
                self._start_worker()
            self.scheduler.start()
            while not (self.stopping and not self.workers):
                self.step()
        finally:
            self.scheduler.join(timeout=KILL_AFTER)
            if self.beacon is not None:
                self.beacon.stop()
            if self.broker is not None:
                if self.reexec_requested:
                    self.broker.handover()
                else:
                    self.broker.stop()
            self._restore_signals()
            close_queue(self.queue)
        logger.info('consumer stopped%s', '; executing it again (SIGHUP)'
                    if self.reexec_requested else '')
        return 0

    def _log_tasks(self) -> None:
        """The startup lines naming what this consumer can run (as Huey's consumer does)."""
        registry = self.queue.registry
        wrappers = [registry.lookup(name) for name in sorted(registry.names())]
        periodic = [w.registry_name for w in wrappers if w is not None and w.periodic]
        regular = [w.registry_name for w in wrappers if w is not None and not w.periodic]
        logger.info('registered tasks: %s', ', '.join(regular) or '(none)')
        logger.info('periodic tasks: %s%s', ', '.join(periodic) or '(none)',
                    '' if self.config.periodic or not periodic else ' (not enqueued: -n)')

    def step(self) -> None:
        """Wait for a worker to end, a signal, or the next chore; then deal with it."""
        sentinels = [h.sentinel for h in self.workers if h.sentinel is not None]
        wait(sentinels + [self._wake_r], TICK)
        self._handle_signals()
        self._reap()
        if self.broker is not None and not self.stopping:
            self.broker.check()
        now = time.monotonic()
        if not self.stopping:
            self._start_due(now)
        if now >= self._next_sweep:
            self._sweep()
        interval = self.config.health_check_interval
        if interval and now >= self._next_health:
            self._next_health = now + interval
            self._health_check()
        self._enforce_deadlines(now)

    def _handle_signals(self) -> None:
        try:
            received = os.read(self._wake_r, 64)
        except BlockingIOError:
            return
        for signum in received:
            graceful, immediate = ((signal.SIGTERM, signal.SIGINT)
                                   if self.config.graceful_signal == 'TERM'
                                   else (signal.SIGINT, signal.SIGTERM))
            name = signal.Signals(signum).name
            if signum == graceful:
                if self.stopping:
                    self.terminate('second %s' % name)
                else:
                    self.stop(name)
            elif signum == immediate:
                self.terminate(name)
            elif signum == signal.SIGHUP:
                if not self.reexec_on_hup:
                    self.restart_workers()
                elif not self.stopping:
                    self.reexec_requested = True
                    self.stop('SIGHUP: executing the consumer again')

    # -- workers -----------------------------------------------------------------
    def _start_worker(self) -> None:
        kind = ProcessHandle if self.config.worker_type == WORKER_PROCESS else ThreadHandle
        handle = kind(self.queue, self.config, self._next_index, self._flags)
        self._next_index += 1
        handle.start()
        self.workers.append(handle)
        logger.debug('started worker %s', handle.owner)

    def _start_due(self, now: float) -> None:
        due = [t for t in self._starts_due if t <= now]
        self._starts_due = [t for t in self._starts_due if t > now]
        for _ in due:
            self._start_worker()

    def _reap(self) -> None:
        for handle in [h for h in self.workers if not h.is_alive()]:
            handle.join()
            self.workers.remove(handle)
            lived = time.monotonic() - handle.started
            if handle.exitcode != 0:
                logger.error('worker %s died (exit status %s)', handle.owner, handle.exitcode)
            self._recover_owner(handle.owner)
            if self.stopping:
                continue
            # A worker that dies right after starting is replaced after a growing pause,
            # so a broken startup hook does not turn into a fork loop.
            self._quick_deaths = self._quick_deaths + 1 if (
                handle.exitcode != 0 and lived < 1.0) else 0
            pause = min(4.0, 0.1 * 2 ** self._quick_deaths) if self._quick_deaths else 0.0
            self._starts_due.append(time.monotonic() + pause)

    def _recover_owner(self, owner: str) -> None:
        try:
            recover_owners(self.queue, [owner], self.config.requeue_interrupted)
        except StorageError as exc:
            # The periodic sweep picks these records up once the storage is back.
            logger.warning('could not recover tasks of worker %s yet: %s', owner, exc)

    def _sweep(self) -> None:
        self._next_sweep = time.monotonic() + self.config.renew_interval
        try:
            sweep_abandoned(self.queue, {h.owner for h in self.workers},
                            requeue=self.config.requeue_interrupted)
        except StorageError as exc:
            logger.warning('could not look for abandoned tasks: %s', exc)
        except Exception:
            logger.exception('looking for abandoned tasks failed')

    def _health_check(self) -> None:
        # Two missed leases, and never less than a few checks, before a worker counts as stuck.
        stale_after = max(2 * self.config.lease, 3 * (self.config.health_check_interval or 0))
        for handle in self.workers:
            age = handle.heartbeat_age()
            if age <= stale_after:
                continue
            if handle.sentinel is None:  # a thread cannot be killed: say so, once
                if not handle.reported_stuck:
                    handle.reported_stuck = True
                    logger.error('worker thread %s has not reported for %.0fs; threads '
                                 'cannot be replaced', handle.owner, age)
                continue
            logger.error('worker %s has not reported for %.0fs; replacing it',
                         handle.owner, age)
            handle.kill()

    # -- stopping ----------------------------------------------------------------
    def stop(self, reason: str = 'request') -> None:
        """Graceful stop: running tasks finish, nothing new starts."""
        if self.stopping:
            return
        self._flags.raise_stop()
        logger.info('graceful shutdown (%s): waiting for running tasks', reason)
        self.stopping = True
        self._starts_due.clear()
        self.scheduler.stop.set()
        timeout = self.config.shutdown_timeout
        if timeout is not None:
            self._stop_deadline = time.monotonic() + timeout
        for handle in self.workers:
            handle.stop()

    def terminate(self, reason: str = 'request') -> None:
        """Immediate stop: running tasks are interrupted (process workers only)."""
        if self.terminating:
            return
        self._flags.raise_halt()
        logger.info('immediate shutdown (%s): interrupting running tasks', reason)
        self.stopping = self.terminating = True
        self._starts_due.clear()
        self.scheduler.stop.set()
        self._kill_deadline = time.monotonic() + KILL_AFTER
        for handle in self.workers:
            handle.terminate()

    def restart_workers(self) -> None:
        """Graceful restart (SIGHUP): each worker finishes its task and is replaced."""
        if self.stopping:
            return
        logger.info('restarting workers (SIGHUP)')
        for handle in self.workers:
            handle.stop()

    def _enforce_deadlines(self, now: float) -> None:
        if self._stop_deadline is not None and now >= self._stop_deadline:
            self._stop_deadline = None
            self.terminate('shutdown timeout of %ss passed' % self.config.shutdown_timeout)
        if self._kill_deadline is not None and now >= self._kill_deadline:
            self._kill_deadline = None
            for handle in self.workers:
                logger.error('worker %s did not stop; killing it', handle.owner)
                handle.kill()
