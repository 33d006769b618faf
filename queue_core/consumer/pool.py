"""Handles the supervisor keeps on its workers, one kind per worker type."""
from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
import threading
import time

from .backoff import StopFlag
from .config import ConsumerConfig
from .owner import make_owner, parse_owner  # noqa: F401  (parse_owner: re-exported)
from .process import WORKER_SIGNALS, SharedFlags, run_worker_process
from .queue_protocol import WorkerQueue
from .worker import Worker


class ProcessHandle:
    """A worker in a forked child process.

    The owner id embeds the child's pid; the random suffix is chosen before the fork so
    that parent and child derive the same id. ``heartbeat`` lives in shared memory.
    """

    def __init__(self, queue: WorkerQueue, config: ConsumerConfig, index: int,
                 flags: SharedFlags) -> None:
        self.queue = queue
        self.config = config
        self.index = index
        self.flags = flags
        self.suffix = secrets.token_hex(4)
        ctx = multiprocessing.get_context('fork')
        self._beat = ctx.Value('d', time.time(), lock=False)
        self._process = ctx.Process(target=self._main, name='queue-worker-%d' % index,
                                    daemon=False)
        self.started = 0.0
        self.owner = ''

    def _main(self) -> None:
        # In the child: the owner id is derived from our own pid.
        run_worker_process(self.queue, self.config, make_owner(os.getpid(), self.suffix),
                           self._supervisor_pid, self._touch, self.flags)

    def _touch(self) -> None:
        self._beat.value = time.time()

    def start(self) -> None:
        """Fork the worker.

        The stop signals are blocked around the fork: one that arrives before the child
        has installed its own handlers then waits for them instead of being lost.
        """
        self._supervisor_pid = os.getpid()
        self._beat.value = time.time()
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
        try:
            self._process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        self.started = time.monotonic()
        pid = self._process.pid
        assert pid is not None  # start() returned: the child exists
        self.owner = make_owner(pid, self.suffix)

    @property
    def sentinel(self) -> int | None:
        """A file descriptor that becomes ready when the process ends."""
        return self._process.sentinel

    def is_alive(self) -> bool:
        """Whether the process is still running."""
        return self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        """Exit status (negative: killed by that signal), ``None`` while running."""
        return self._process.exitcode

    def heartbeat_age(self) -> float:
        """Seconds since the worker's renewal thread last beat."""
        return time.time() - self._beat.value

    def send(self, signum: int) -> None:
        """Send a signal to the process, if it still exists."""
        if self._process.pid is not None and self._process.exitcode is None:
            try:
                os.kill(self._process.pid, signum)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Graceful: finish the current task, then exit."""
        self.send(signal.SIGINT)

    def terminate(self) -> None:
        """Immediate: interrupt the current task, then exit."""
        self.send(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL (for a stuck worker)."""
        self.send(signal.SIGKILL)

    def join(self, timeout: float | None = None) -> None:
        """Reap the process."""
        self._process.join(timeout)


class ThreadHandle:
    """A worker in a thread of the supervisor (cannot be interrupted or killed)."""

    sentinel = None

    def __init__(self, queue: WorkerQueue, config: ConsumerConfig, index: int,
                 flags: SharedFlags | None = None) -> None:
        self.queue = queue
        self.config = config
        self.index = index
        self.owner = make_owner(os.getpid(), secrets.token_hex(4))
        self._stop = StopFlag(flags.stop if flags is not None else None)
        self._beat = time.time()
        self._worker = Worker(queue, config, self.owner, stop=self._stop,
                              heartbeat=self._touch)
        self._thread = threading.Thread(target=self._worker.run, daemon=True,
                                        name='queue-worker-%d' % index)
        self.started = 0.0
        self.exitcode: int | None = None
        #: Set once the supervisor has reported this thread as stuck.
        self.reported_stuck = False

    def _touch(self) -> None:
        self._beat = time.time()

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()
        self.started = time.monotonic()

    def is_alive(self) -> bool:
        """Whether the thread is still running."""
        alive = self._thread.is_alive()
        if not alive and self.exitcode is None:
            self.exitcode = 0
        return alive

    def heartbeat_age(self) -> float:
        """Seconds since the worker's renewal thread last beat."""
        return time.time() - self._beat

    def stop(self) -> None:
        """Graceful: finish the current task, then end."""
        self._stop.set()

    # A thread cannot be interrupted: SIGTERM waits for the running task.
    terminate = stop

    def kill(self) -> None:
        """Threads cannot be killed; the supervisor only reports them."""

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread."""
        self._thread.join(timeout)
