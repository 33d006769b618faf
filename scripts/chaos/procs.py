"""The campaign's child processes (a broker, subscribers, the consumer; Redis is
``scripts.support.redis_server``), each in its own process group so that it (and
everything it forks) can be signalled or killed as one, and all of them at the end."""
from __future__ import annotations

import os
import sys
import time
from typing import Any

import zmq

from ..support.polling import poll
from ..support.ports import free_port
from ..support.procs import Child


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
            if poll(lambda: not self.alive() or self.stats(0.5) is not None,
                        deadline - time.monotonic()) and self.alive():
                return True
            self.kill()
        return False


class SubscriberProc(Child):
    """``scripts.chaos.subscriber``: logs every event and every reported loss as JSON lines."""

    def __init__(self, workdir: str, label: str, broker: BrokerProc) -> None:
        self.label = label
        self.events_path = os.path.join(workdir, 'sub-%s.jsonl' % label)
        args = [sys.executable, '-m', 'scripts.chaos.subscriber', '--connect', broker.publish,
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
        return bool(poll(lambda: self.ready_count() > before or not self.alive(),
                             timeout)) and self.alive()


class ConsumerProc(Child):
    """``python -m queue_core.cli scripts.chaos.workload_app.queue -w N --bus ...
    --requeue-interrupted``."""

    def __init__(self, workdir: str, env: dict[str, str], ingest: str, workers: int,
                 lease: float) -> None:
        args = [sys.executable, '-m', 'queue_core.cli',
                'scripts.chaos.workload_app.queue',
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
            if poll(lambda: (self.started_count() > before
                                 and len(self.children()) >= workers)
                        or not self.alive(), deadline - time.monotonic()) and self.alive():
                return True
            self.kill()
            time.sleep(1.0)
        return False
