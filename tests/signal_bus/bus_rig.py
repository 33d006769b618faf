"""Shared parts of the subscriber and signal-tail tests (their ``bus`` fixture is in
conftest.py).

``Bus`` runs a real ``Broker`` on free loopback ports and publishes raw events to it through a
PUSH socket built with the wire encoders; ``LossyLink`` is a real XSUB/XPUB forwarder
between the broker and a subscriber that can hold messages back and drop chosen events,
so tests make a subscriber miss exactly the events they mean it to.
"""
from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
import uuid
from typing import Any, Callable

import zmq

from signal_bus import wire
from signal_bus.broker import Broker
from signal_bus.config import BrokerConfig

from scripts.support.polling import wait_until
from scripts.support.ports import consecutive_free_ports, free_port


def endpoint(port: int) -> str:
    """``tcp://127.0.0.1:<port>``."""
    return 'tcp://127.0.0.1:%d' % port


class Bus:
    """A broker on free loopback ports plus a raw publisher that never drops."""

    def __init__(self, ring: int = 100_000, heartbeat: float = 0.25) -> None:
        self.config_options = {'ring': ring, 'heartbeat_interval': heartbeat}
        port = consecutive_free_ports(2)[0]
        self.ingest = endpoint(free_port())
        self.publish = endpoint(port)
        self.control = endpoint(port + 1)
        self.context = zmq.Context()
        self.push = self.context.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(self.ingest)
        self.pub = int.from_bytes(os.urandom(8), 'big')
        self.pseq = 0
        self.broker: Any = None

    def start(self) -> 'Bus':
        """Start (or start again) the broker on the same endpoints."""
        config = BrokerConfig(ingest=self.ingest, publish=self.publish, control=self.control,
                              **self.config_options)
        self.broker = Broker(config).start()
        return self

    def stop(self) -> None:
        """Stop the broker (the endpoints stay reserved for a restart)."""
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def restart(self) -> None:
        """Stop the broker and start a new one (a new epoch) on the same endpoints."""
        self.stop()
        self.start()

    def send(self, signal: str, name: str = 'app.tasks.add', task_id: str | None = None,
             **body: Any) -> str:
        """Publish one event with ``tseq`` nil (never held back); returns the task id."""
        task_id = task_id or uuid.uuid4().hex
        self.pseq += 1
        data = {'signal': signal, 'task_id': task_id, 'task_name': name, 'tseq': None,
                'ts': time.time(), 'host': 'testhost', 'pid': os.getpid(),
                'source': 'worker', 'args': [1, 2], 'kwargs': {}, 'retries': 0,
                'final': signal == 'complete'}
        data.update(body)
        self.push.send_multipart([
            wire.encode_header(signal, name, task_id, None, self.pub, self.pseq),
            wire.encode_body(data)])
        return task_id

    def published(self) -> int:
        """How many events the broker has released so far."""
        return self.broker.stats()['last_seq']

    def wait_published(self, count: int) -> None:
        """Poll until the broker has released ``count`` events."""
        wait_until(lambda: self.published() >= count, timeout=10,
                   message='the broker to release %d events' % count)

    def close(self) -> None:
        """Stop everything this bus started."""
        self.stop()
        self.push.close(0)
        self.context.term()


class LossyLink:
    """A forwarder between the broker's publish socket and subscribers that can hold
    messages back (``hold()``/``release()``) and drop the events whose seq ``drop``
    selects, so a subscriber misses exactly those."""

    def __init__(self, upstream: str, drop: Callable[[int], bool] = lambda seq: False):
        self.upstream = upstream
        self.endpoint = endpoint(consecutive_free_ports(2)[0])
        self.drop = drop
        self.dropped: list[int] = []
        self._held = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def hold(self) -> None:
        """Keep what arrives from now on until ``release()``."""
        self._held.set()

    def release(self) -> None:
        """Forward what was held, in order (dropping what ``drop`` selects)."""
        self._held.clear()

    def _run(self) -> None:
        context = zmq.Context()
        xsub, xpub = context.socket(zmq.XSUB), context.socket(zmq.XPUB)
        xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        for sock in (xsub, xpub):
            sock.setsockopt(zmq.LINGER, 0)
        xsub.connect(self.upstream)
        xpub.bind(self.endpoint)
        self._ready.set()
        backlog: list[list[bytes]] = []
        while not self._stop.is_set():
            if xpub.poll(0):
                xsub.send(xpub.recv())
            if xsub.poll(5):
                backlog.append(xsub.recv_multipart())
            while backlog and not self._held.is_set():
                self._forward(xpub, backlog.pop(0))
        for sock in (xsub, xpub):
            sock.close(0)
        context.term()

    def _forward(self, xpub: zmq.Socket, frames: list[bytes]) -> None:
        if len(frames) == 3:
            seq = wire.decode_meta(frames[1]).seq
            if self.drop(seq):
                self.dropped.append(seq)
                return
        xpub.send_multipart(frames)

    def close(self) -> None:
        """Stop forwarding."""
        self._stop.set()
        self._thread.join(10)


class Running:
    """A command in a subprocess, its stdout read line by line by a thread."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip('\n'))

    def read(self, count: int, timeout: float = 10.0) -> list[str]:
        """The next ``count`` lines (fails when they do not come within ``timeout``)."""
        try:
            return [self.lines.get(timeout=timeout) for _ in range(count)]
        except queue.Empty:
            self.proc.kill()
            command = ' '.join(map(str, self.proc.args[1:3]))
            raise AssertionError('%s printed too few lines; stderr: %s'
                                 % (command, self.proc.communicate()[1])) from None

    def read_until(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:
        """Read lines until one satisfies ``predicate``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            (line,) = self.read(1, max(0.01, deadline - time.monotonic()))
            if predicate(line):
                return line

    def finish(self, sig: int | None = None, timeout: float = 20.0) -> tuple[int, str]:
        """Send ``sig`` (if any), wait for the exit; return (status, stderr)."""
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        finally:
            self.proc.kill()
        self._reader.join(5)
        return self.proc.returncode, err


def refusing_bus(folder: Any) -> tuple[Bus, str]:
    """A started CURVE ``Bus`` whose authorized keys list no client this test holds, and
    the broker's public key file (what a refused client is given)."""
    from signal_bus.keys import generate_keypair
    broker_public, broker_secret = generate_keypair(str(folder / 'broker'), 'broker')
    generate_keypair(str(folder / 'allowed'), 'client')
    bus = Bus()
    bus.config_options.update(curve_secret_key=broker_secret,
                              curve_authorized_keys=str(folder / 'allowed'))
    bus.start()
    return bus, broker_public


def subscribed(bus: Bus, count: int = 1) -> None:
    """Poll until the broker has seen ``count`` subscriptions (a subscriber is live)."""
    wait_until(lambda: bus.broker.stats()['subscriptions'] >= count, timeout=15,
               message='a subscriber to subscribe')

