"""Child processes of the campaign, each in its own process group so that it (and
everything it forks) can be signalled or killed as one, and all of them at the end."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS_DIR = os.path.dirname(HERE)
REPO_ROOT = os.path.dirname(SCRIPTS_DIR)


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it is truthy (returned) or ``timeout`` passes (``None``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: the repository and ``scripts/`` importable."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **extra)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO_ROOT, SCRIPTS_DIR, os.environ.get('PYTHONPATH')) if p)
    return env


class Child:
    """One command run in a new session (process group), its output appended to a log."""

    def __init__(self, name: str, args: list[str], log_path: str,
                 env: dict[str, str] | None = None, cwd: str = SCRIPTS_DIR) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = env or child_env()
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> 'Child':
        """Start the command (again, after it ended)."""
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.starts += 1
        return self

    @property
    def pid(self) -> int | None:
        """The process id (also its process group id), or ``None`` before the start."""
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def send(self, signum: int) -> None:
        """Signal the process itself."""
        if self.alive():
            assert self.proc is not None
            try:
                os.kill(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    def send_group(self, signum: int) -> None:
        """Signal the whole process group."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> int | None:
        """Exit status, or ``None`` if still running after ``timeout`` seconds."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL the whole process group and reap the process."""
        if self.proc is None:
            return
        self.send_group(signal.SIGCONT)   # a stopped process dies only once continued
        self.send_group(signal.SIGKILL)
        self.wait(10)

    def log_text(self) -> str:
        """What the process logged so far."""
        try:
            with open(self.log_path, errors='replace') as handle:
                return handle.read()
        except FileNotFoundError:
            return ''

    def children(self) -> list[int]:
        """Pids of the process's live children (a consumer's workers)."""
        pid = self.pid
        if pid is None:
            return []
        try:
            with open('/proc/%d/task/%d/children' % (pid, pid)) as handle:
                return [int(p) for p in handle.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            return []


class Children:
    """Every child the campaign started; ``kill_all()`` ends them all, whatever happened."""

    def __init__(self) -> None:
        self.items: list[Child] = []

    def add(self, child: Child) -> Child:
        """Remember ``child`` for the final cleanup and return it."""
        self.items.append(child)
        return child

    def kill_all(self) -> None:
        """SIGKILL every child's process group (each by its own id)."""
        for child in self.items:
            child.kill()


class RedisProc(Child):
    """A private ``redis-server`` on a free loopback port, with an append-only file."""

    def __init__(self, workdir: str) -> None:
        binary = shutil.which('redis-server')
        if binary is None:
            raise RuntimeError('redis-server is not installed; run scripts/setup.sh')
        self.port = free_port()
        self.dir = os.path.join(workdir, 'redis')
        os.makedirs(self.dir, exist_ok=True)
        args = [binary, '--port', str(self.port), '--bind', '127.0.0.1', '--dir', self.dir,
                '--save', '', '--daemonize', 'no', '--appendonly', 'yes',
                '--appendfsync', 'always', '--logfile', os.path.join(self.dir, 'redis.log')]
        super().__init__('redis', args, os.path.join(workdir, 'redis.out'), cwd=workdir)

    def url(self, socket_timeout: float) -> str:
        """The storage URL, with a short socket timeout so a stalled server is noticed."""
        return 'redis://127.0.0.1:%d/0?socket_timeout=%s&socket_connect_timeout=%s' % (
            self.port, socket_timeout, socket_timeout)

    def answers(self) -> bool:
        """Whether the server answers PING right now."""
        import redis
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start_ready(self, timeout: float = 15.0) -> bool:
        """Start and wait until it answers PING."""
        self.start()
        return bool(wait_for(self.answers, timeout))

    def stop(self) -> None:
        """SIGTERM (the server finishes its append-only file) and wait for the exit."""
        self.send(signal.SIGCONT)
        self.send(signal.SIGTERM)
        if self.wait(15) is None:
            self.kill()


class BrokerProc(Child):
    """``python -m signal_bus.broker_cli`` on fixed free ports, so restarts reuse them."""

    def __init__(self, workdir: str, max_event_bytes: int) -> None:
        ports = [free_port() for _ in range(3)]
        self.ingest, self.publish, self.control = ['tcp://127.0.0.1:%d' % p for p in ports]
        args = [sys.executable, '-m', 'signal_bus.broker_cli', '--ingest', self.ingest,
                '--publish', self.publish, '--control', self.control,
                '--max-event-bytes', str(max_event_bytes), '-q']
        super().__init__('broker', args, os.path.join(workdir, 'broker.log'))

    def stats(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """The broker's ``stats`` answer, or ``None`` when it does not answer in time."""
        from signal_bus import wire
        context = zmq.Context.instance()
        sock = context.socket(zmq.DEALER)
        sock.linger = 0
        try:
            sock.connect(self.control)
            sock.send(wire.encode_stats_request())
            if not sock.poll(int(timeout * 1000)):
                return None
            return dict(wire.decode_control_reply(sock.recv_multipart()).data)
        finally:
            sock.close(0)

    def start_ready(self, timeout: float = 15.0) -> bool:
        """Start (retrying while the ports are still held) and wait until it answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.start()
            if wait_for(lambda: not self.alive() or self.stats(0.5) is not None,
                        deadline - time.monotonic()) and self.alive():
                return True
            self.kill()
        return False


class SubscriberProc(Child):
    """``chaos.subscriber``: logs every event and every reported loss as JSON lines."""

    def __init__(self, workdir: str, label: str, broker: BrokerProc) -> None:
        self.label = label
        self.events_path = os.path.join(workdir, 'sub-%s.jsonl' % label)
        args = [sys.executable, '-m', 'chaos.subscriber', '--connect', broker.publish,
                '--control', broker.control, '--log', self.events_path]
        super().__init__('subscriber-' + label, args,
                         os.path.join(workdir, 'sub-%s.log' % label))

    def ready_count(self) -> int:
        """How many times a run of this subscriber reported itself connected."""
        try:
            with open(self.events_path, 'rb') as handle:
                return handle.read().count(b'"k": "ready"')
        except FileNotFoundError:
            return 0

    def start_ready(self, timeout: float = 20.0) -> bool:
        """Start and wait until this run is connected and has queued the ring's history."""
        before = self.ready_count()
        self.start()
        return bool(wait_for(lambda: self.ready_count() > before or not self.alive(),
                             timeout)) and self.alive()


class ConsumerProc(Child):
    """``python -m queue_core.cli chaos.workload_app.queue -w N --bus ... --requeue-interrupted``."""

    def __init__(self, workdir: str, env: dict[str, str], ingest: str, workers: int,
                 lease: float) -> None:
        args = [sys.executable, '-m', 'queue_core.cli', 'chaos.workload_app.queue',
                '-w', str(workers), '--bus', ingest, '--requeue-interrupted',
                '--lease', str(lease), '-n', '-l', os.path.join(workdir, 'consumer.log')]
        super().__init__('consumer', args, os.path.join(workdir, 'consumer.out'), env=env)

    def started_count(self) -> int:
        """How many consumer runs logged their start."""
        return self.log_text_of_consumer().count('consumer started')

    def log_text_of_consumer(self) -> str:
        """The consumer's own log file (``-l``)."""
        path = self.args[self.args.index('-l') + 1]
        try:
            with open(path, errors='replace') as handle:
                return handle.read()
        except FileNotFoundError:
            return ''

    def start_ready(self, workers: int, timeout: float = 30.0) -> bool:
        """Start and wait until the supervisor runs its workers; a consumer that exits at
        once (say, its app failed to import) is started again until ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.started_count()
            self.start()
            if wait_for(lambda: (self.started_count() > before
                                 and len(self.children()) >= workers)
                        or not self.alive(), deadline - time.monotonic()) and self.alive():
                return True
            self.kill()
            time.sleep(1.0)
        return False
