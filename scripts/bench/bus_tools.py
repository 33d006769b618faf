"""A signal broker and bus subscribers as real processes, for the bus benchmarks."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from typing import Any

from scripts.bench.common import Child
from scripts.support.polling import wait_until
from scripts.support.ports import consecutive_free_ports, free_port
from scripts.support.procs import rss_kib

_BROKER = 'import sys; from signal_bus.broker_cli import main; sys.exit(main())'


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.2):
            return True
    except OSError:
        return False


class BrokerProcess:
    """``signal-broker`` on three free loopback ports."""

    def __init__(self, ring: int | None = None) -> None:
        # Consecutive, as the default layout: a consumer given only --bus INGEST finds the
        # control socket (for the batch probe) on the ingest port + 2.
        ports = consecutive_free_ports(3)
        self.ingest, self.publish, self.control = ['tcp://127.0.0.1:%d' % p for p in ports]
        command = [sys.executable, '-c', _BROKER, '--ingest', self.ingest,
                   '--publish', self.publish, '--control', self.control, '-q']
        if ring is not None:
            command += ['--ring', str(ring)]
        self.child = Child(command)
        wait_until(lambda: self.child.check_alive() or all(_listening(p) for p in ports), 15,
                   0.02, 'the signal broker to listen', TimeoutError)

    @property
    def pid(self) -> int:
        """The broker's process id."""
        return self.child.pid

    def rss_kib(self) -> int:
        """The broker's resident memory."""
        return rss_kib(self.child.pid)

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The broker's ``stats`` answer from its control socket."""
        import msgpack
        import zmq
        context = zmq.Context()
        sock = context.socket(zmq.DEALER)
        sock.linger = 0
        try:
            sock.connect(self.control)
            sock.send(msgpack.packb({'op': 'stats'}))
            if not sock.poll(int(timeout * 1000)):
                raise TimeoutError('the broker did not answer stats within %s s' % timeout)
            frames = sock.recv_multipart()
            return msgpack.unpackb(frames[-1], raw=False, strict_map_key=False)
        finally:
            sock.close(0)
            context.term()

    def close(self) -> None:
        """Stop the broker."""
        self.child.stop()

    def __enter__(self) -> 'BrokerProcess':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class RelayProcess:
    """``apps/relay.py``, the broker benchmark's reference, on two free loopback ports (it
    has no control socket: ``control`` is None)."""

    control = None

    def __init__(self) -> None:
        ports = [free_port() for _ in range(2)]
        self.ingest, self.publish = ['tcp://127.0.0.1:%d' % p for p in ports]
        self.child = Child([sys.executable, 'apps/relay.py', '--ingest', self.ingest,
                            '--publish', self.publish])
        wait_until(lambda: self.child.check_alive() or all(_listening(p) for p in ports), 15,
                   0.02, 'the relay to listen', TimeoutError)

    def close(self) -> None:
        """Stop the relay."""
        self.child.stop()

    def __enter__(self) -> 'RelayProcess':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class SubscriberProcess:
    """``apps/bus_subscriber.py`` (or, ``raw``, ``apps/raw_subscriber.py``) attached to a
    broker; ask it for counts with ``stats``."""

    def __init__(self, broker: Any, sleep_ms: float = 0.0,
                 timing: bool = False, raw: bool = False) -> None:
        if raw:
            command = [sys.executable, 'apps/raw_subscriber.py', '--publish', broker.publish]
        else:
            command = [sys.executable, 'apps/bus_subscriber.py', '--publish', broker.publish,
                       '--sleep-ms', str(sleep_ms)]
        command += ['--timing'] if timing else []
        self.child = Child(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.child.proc.stdout.readline()
        if line.strip() != b'ready':
            self.child.check_alive()
            raise RuntimeError('the bus subscriber did not start: %r\n%s'
                               % (line, self.child.log()))

    def stats(self) -> dict[str, Any]:
        """The subscriber's counts so far."""
        self.child.proc.stdin.write(b'stats\n')
        self.child.proc.stdin.flush()
        line = self.child.proc.stdout.readline()
        if not line:
            self.child.check_alive()
            raise RuntimeError('the bus subscriber closed its output:\n' + self.child.log())
        return json.loads(line)

    def settle(self, quiet: float = 0.6, timeout: float = 60.0) -> None:
        """Wait until the handled count has not moved for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last, since = self.stats()['handled'], time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < quiet:
            time.sleep(0.1)
            now = self.stats()['handled']
            if now != last:
                last, since = now, time.monotonic()

    def wait_handled(self, count: int, timeout: float, stall: float = 3.0) -> dict[str, Any]:
        """Counts once ``count`` events were handled, or when ``timeout`` passes, or when
        nothing new arrived for ``stall`` seconds."""
        deadline = time.monotonic() + timeout
        latest = self.stats()
        progress_at = time.monotonic()
        while latest['handled'] < count:
            now = time.monotonic()
            if now > deadline or now - progress_at > stall:
                break
            time.sleep(0.05)
            current = self.stats()
            if current['handled'] != latest['handled']:
                progress_at = time.monotonic()
            latest = current
        return latest

    def close(self) -> None:
        """End its input (it closes the subscriber and exits), then make sure it is gone."""
        try:
            self.child.proc.stdin.close()
            self.child.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.child.stop()
