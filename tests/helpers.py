"""Test helpers: a throwaway Redis server, polling with deadlines, queue drivers, and the
signal dispositions every child process of the suite starts with."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Callable


#: Signals a launcher may leave ignored or blocked: a shell ignores SIGINT and SIGQUIT in a
#: background job, ``nohup`` ignores SIGHUP. An ignored signal stays ignored across ``exec``,
#: so every process the tests start would inherit it (``signal-tail`` would not stop on
#: SIGINT, a consumer's workers would ignore it).
LAUNCH_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM,
                  signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)


def _still_ignored(signum: int, frame: Any) -> None:
    """Ignores a signal in this process; unlike ``SIG_IGN``, not inherited by ``exec``."""


def reset_launch_signals() -> Callable[[], None]:
    """Make this process start children as if the suite had been launched from a terminal.

    Each of ``LAUNCH_SIGNALS`` that is ignored here gets a Python handler instead (SIGINT
    Python's usual ``default_int_handler``, the others one that still ignores it), and each
    is unblocked: a handler, unlike ``SIG_IGN``, is reset to the default by ``exec``, so
    every child, whoever starts it, begins with the default disposition. Call in the main
    thread before any child starts; returns a function that puts back what was in place.
    """
    before = {signum: signal.getsignal(signum) for signum in LAUNCH_SIGNALS}
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, LAUNCH_SIGNALS)
    for signum, handler in before.items():
        if handler == signal.SIG_IGN:
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                          else _still_ignored)

    def restore() -> None:
        for signum, handler in before.items():
            if handler is not None:   # None: set outside Python, left as it is now
                signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return restore


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def three_free_ports() -> int:
    """A port P such that P, P+1 and P+2 are free on loopback (ingest, publish, control)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
            base = probe.getsockname()[1]
        if base + 2 > 65535:
            continue
        try:
            for port in (base, base + 1, base + 2):
                with socket.socket() as sock:
                    sock.bind(('127.0.0.1', port))
        except OSError:
            continue
        return base
    raise RuntimeError('no three consecutive free ports')


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01,
               message: str = 'condition') -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %.1fs waiting for %s' % (timeout, message))
        time.sleep(interval)


class RedisServer:
    """A private ``redis-server`` on a free loopback port, which tests may stop and restart.

    With ``appendonly=True`` it keeps its data in an append-only file (fsync always), so a
    restart loses nothing that was acknowledged.
    """

    def __init__(self, appendonly: bool = False) -> None:
        binary = shutil.which('redis-server')
        if binary is None:
            raise RuntimeError('redis-server is not installed; run scripts/setup.sh')
        self.binary = binary
        self.appendonly = appendonly
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix='redis-test-')
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return 'redis://127.0.0.1:%d/0' % self.port

    def start(self) -> 'RedisServer':
        """Start the server and wait until it answers PING."""
        args = [self.binary, '--port', str(self.port), '--bind', '127.0.0.1',
                '--dir', self.dir, '--save', '', '--daemonize', 'no',
                '--logfile', os.path.join(self.dir, 'redis.log')]
        if self.appendonly:
            args += ['--appendonly', 'yes', '--appendfsync', 'always']
        else:
            args += ['--appendonly', 'no']
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, timeout=10, message='redis-server to answer PING')
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=0.5) as sock:
                sock.sendall(b'PING\r\n')
                return sock.recv(16).startswith(b'+PONG')
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill=True``) and wait for it to exit."""
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port (data kept only with ``appendonly``)."""
        self.stop()
        self.start()

    def flushall(self) -> None:
        """Empty this throwaway server (never any other)."""
        import redis
        client = redis.Redis(port=self.port)
        client.flushall()
        client.close()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class SignalRecorder:
    """Records ``(signal, task_id)`` pairs (and exceptions) from a queue's handlers."""

    def __init__(self, queue: Any) -> None:
        self.events: list[tuple[str, str]] = []
        self.exceptions: list[BaseException] = []
        self.tasks: list[Any] = []
        self.retries: list[int] = []
        from queue_core.signals import ALL_SIGNALS
        # Registered per signal (not catch-all) so it runs before handlers added later.
        queue.signal(*ALL_SIGNALS)(self._record)

    def _record(self, signal: str, task: Any, *extra: Any) -> None:
        self.events.append((signal, task.id))
        self.tasks.append(task)
        self.retries.append(task.retries)
        if extra:
            self.exceptions.append(extra[0])

    def signals(self, task_id: str | None = None) -> list[str]:
        """The recorded signals, for one task or all."""
        return [sig for sig, tid in self.events if task_id is None or tid == task_id]

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.events.clear()
        self.exceptions.clear()
        self.tasks.clear()
        self.retries.clear()


def execute_next(queue: Any, timestamp: Any = None) -> Any:
    """Dequeue one task and run it through the full lifecycle, as a worker would."""
    task = queue.dequeue()
    assert task is not None, 'the queue is empty'
    return queue.execute(task, timestamp)


def run_schedule(queue: Any, timestamp: Any) -> int:
    """Move tasks due at ``timestamp`` from the schedule to the queue, as the scheduler does."""
    from queue_core.signals import SOURCE_SCHEDULER
    tasks = queue.read_schedule(timestamp)
    with queue.emitting_as(SOURCE_SCHEDULER):
        for task in tasks:
            queue.enqueue(task)
    return len(tasks)
